"""The priority lane's worklist trigger: a Modality Worklist C-FIND to the new PACS or the RIS
every `every_minutes`, for procedures scheduled from today to `days_ahead` days on.

One query per modality asked (`modalities`; one for all when empty), on one association;
each scheduled procedure step answered is a request for its patient, due on its start date,
with its modality. The same step answered by the next poll is the same request (its
accession number, requested procedure and step IDs make the reference): served once. A poll
that fails is reported, never raised; the next one asks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from runner.dicom.find import FindSession
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import MODALITY_WORKLIST_FIND
from runner.execute.peers import tls_files
from runner.inventory.answers import answer_text, parse_study_date
from runner.plan.priority import PriorityRequest, Trigger
from runner.profile.models import PriorityWorklist


@dataclass(frozen=True, slots=True)
class WorklistPoll:
    """One poll's requests, and why it failed (empty when it did not)."""

    requests: list[PriorityRequest] = field(default_factory=list)
    problem: str = ""


def worklist_query(start: date, end: date, modality: str, station: str | None) -> Dataset:
    """The MWL identifier: steps starting in [start, end], of `modality` (any when empty)."""
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station or ""
    step.ScheduledProcedureStepStartDate = f"{start:%Y%m%d}-{end:%Y%m%d}"
    step.ScheduledProcedureStepStartTime = ""
    step.ScheduledProcedureStepID = ""
    query = Dataset()
    query.PatientID = ""
    query.IssuerOfPatientID = ""
    query.AccessionNumber = ""
    query.RequestedProcedureID = ""
    query.StudyInstanceUID = ""
    query.ScheduledProcedureStepSequence = DicomSequence([step])
    return query


class WorklistPoller:
    """Polls the worklist when due (the first call at once)."""

    def __init__(self, section: PriorityWorklist, calling_ae: str, settings: DicomSettings,
                 today: Callable[[], date] = date.today) -> None:
        self.section = section
        self.peer = Peer(section.ae_title, section.host, section.port,
                         tls=tls_files(section.tls))
        self.calling_ae = calling_ae
        self.settings = settings
        self.today = today
        self._next = 0.0

    def due(self, now: float) -> bool:
        """Whether a poll is due at monotonic time `now`."""
        return now >= self._next

    def poll_if_due(self, received_at: datetime) -> WorklistPoll:
        """Poll if it is time (else nothing)."""
        now = time.monotonic()
        if not self.due(now):
            return WorklistPoll()
        self._next = now + self.section.every_minutes * 60
        return self.poll(received_at)

    def poll(self, received_at: datetime) -> WorklistPoll:
        """Ask the worklist now."""
        start = self.today()
        end = start + timedelta(days=self.section.days_ahead)
        requests: list[PriorityRequest] = []
        with FindSession(self.peer, self.calling_ae, self.settings,
                         MODALITY_WORKLIST_FIND) as session:
            for modality in self.section.modalities or [""]:
                outcome = session.ask_as_is(worklist_query(
                    start, end, modality, self.section.station_ae_title))
                if not outcome.ok:
                    return WorklistPoll(requests, f"worklist {self.peer}: {outcome.detail}")
                requests += [r for r in (_request(ds, received_at)
                                         for ds in outcome.identifiers) if r is not None]
        return WorklistPoll(requests)


def _request(answer: Dataset, received_at: datetime) -> PriorityRequest | None:
    """The request of one worklist answer (None without a patient ID)."""
    patient_id = answer_text(answer, "PatientID")
    if not patient_id:
        return None
    steps = answer.get("ScheduledProcedureStepSequence") or [Dataset()]
    step = steps[0]
    step_id = answer_text(step, "ScheduledProcedureStepID")
    reference = "/".join((answer_text(answer, "AccessionNumber"),
                          answer_text(answer, "RequestedProcedureID"), step_id,
                          answer_text(answer, "StudyInstanceUID")))
    return PriorityRequest(
        Trigger.WORKLIST, patient_id, received_at, answer_text(answer, "IssuerOfPatientID"),
        parse_study_date(answer_text(step, "ScheduledProcedureStepStartDate")),
        answer_text(step, "Modality").upper(),
        (answer_text(step, "BodyPartExamined") or answer_text(answer, "BodyPartExamined"))
        .upper(), reference=reference, event="worklist")
