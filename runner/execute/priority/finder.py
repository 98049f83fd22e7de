"""A patient's studies at the source: the study-level C-FINDs a priority request needs.

Asked by Patient ID (each ID the patient may be held under), on a short association of its
own to the first device that answers (the lane is idle most of the time: no association is
kept open for hours). A patient ID with wildcard characters is never asked: `*` or `?` in an
ID from a message would match other patients. Answers are kept only when their Patient ID is
exactly the one asked and, when both sides give one, their issuer is the request's.
With `body_parts`, each study's series are asked for BodyPartExamined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydicom import Dataset

from runner.dicom.find import FindSession
from runner.dicom.peer import DicomSettings, Peer
from runner.inventory.answers import StudyAnswer, answer_text, parse_answer, studies_of
from runner.inventory.census import Keys
from runner.inventory.cfind import study_query
from runner.inventory.model import Study

WILDCARDS = frozenset("*?\\")


def has_wildcards(patient_id: str) -> bool:
    """Whether a C-FIND would read the ID as a pattern (or as several values)."""
    return any(c in WILDCARDS for c in patient_id)


@dataclass(frozen=True, slots=True)
class PatientStudies:
    """What the source answered for a patient: `ok` False when no device answered fully."""

    ok: bool
    detail: str
    studies: tuple[Study, ...] = ()
    body_parts: Mapping[str, frozenset[str]] = field(default_factory=dict)
    modalities: Mapping[str, frozenset[str]] = field(default_factory=dict)  # in the study


class PatientFinder:
    """Asks the source's devices (in order, the next when one fails) for a patient's
    studies."""

    def __init__(self, devices: Sequence[tuple[str, Peer]], calling_ae: str,
                 settings: DicomSettings, modalities: Sequence[str] = ()) -> None:
        self.devices = list(devices)
        self.calling_ae = calling_ae
        self.settings = settings
        self.modalities = list(modalities)

    def find(self, patient_ids: Sequence[str], issuer: str = "",
             body_parts: bool = False) -> PatientStudies:
        """The studies held under any of `patient_ids` (those with wildcards are skipped):
        the request's own ID first, of `issuer`, then the IDs it maps back to."""
        asked = [pid for pid in patient_ids if pid and not has_wildcards(pid)]
        if not asked:
            return PatientStudies(False, "the patient ID has wildcard characters (* ? \\)")
        failures = []
        for device_id, peer in self.devices:
            with FindSession(peer, self.calling_ae, self.settings) as session:
                found = self._ask(session, device_id, peer, asked, issuer, body_parts)
            if found.ok:
                return found
            failures.append(f"{device_id}: {found.detail}")
        return PatientStudies(False, "; ".join(failures) or "no source device")

    def _ask(self, session: FindSession, device_id: str, peer: Peer, asked: list[str],
             issuer: str, body_parts: bool) -> PatientStudies:
        answers: list[StudyAnswer] = []
        for index, pid in enumerate(asked):
            outcome = session.ask("STUDY", _patient_query(pid))
            if not outcome.ok:
                return PatientStudies(False, outcome.detail)
            # the issuer is the request's: it names the ID as given, not one mapped back
            answers += [StudyAnswer(device_id, peer, ds) for ds in outcome.identifiers
                        if _same_patient(ds, pid, issuer if index == 0 else "")]
        found = [f for f in (parse_answer(a) for a in answers) if f is not None]
        unique = list({f.uid: f for f in found}.values())
        studies = tuple(studies_of(unique, self.modalities, []))
        parts: dict[str, frozenset[str]] = {}
        if body_parts:
            for study in studies:
                outcome = session.ask("SERIES", _series_query(study.study_uid))
                if not outcome.ok:
                    return PatientStudies(False, outcome.detail)
                parts[study.study_uid] = frozenset(
                    answer_text(ds, "BodyPartExamined").upper() for ds in outcome.identifiers
                    if answer_text(ds, "BodyPartExamined"))
        modalities = {f.uid: frozenset(m.upper() for m in f.modalities) for f in unique}
        return PatientStudies(True, f"{len(studies)} studies on {device_id}", studies, parts,
                              modalities)


def _same_patient(ds: Dataset, patient_id: str, issuer: str) -> bool:
    """An answer of the patient asked: the same ID exactly, and no other issuer."""
    if answer_text(ds, "PatientID") != patient_id:
        return False
    theirs = answer_text(ds, "IssuerOfPatientID")
    return not (issuer and theirs and theirs != issuer)


def _patient_query(patient_id: str) -> Dataset:
    """The census's study-level query, for one Patient ID at any date, with its issuer."""
    query = study_query(Keys(None, patient_id, exact=True))
    query.IssuerOfPatientID = ""
    return query


def _series_query(study_uid: str) -> Dataset:
    query = Dataset()
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.BodyPartExamined = ""
    return query
