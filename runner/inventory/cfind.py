"""Live census by C-FIND: every study the source holds, with its counts, as an Inventory.

The strategy is pure (runner.inventory.census: date windows, the sweep with any date, splits
while an answer is full, a silent cap learned); this module asks the source: it picks the
first device that answers C-ECHO, fails over to the next when one goes down, sorts each
answer into answered / full / refused, and fills what study-level answers lack (instance
counts from SERIES- or IMAGE-level queries, tier assumed local) with a note for each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from pydicom import Dataset

from runner.dicom.echo import c_echo
from runner.dicom.find import FindOutcome, FindSession
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.status import StatusCategory
from runner.errors import DicomError
from runner.inventory.answers import (
    FoundStudy,
    StudyAnswer,
    answer_count,
    answer_text,
    answer_values,
    found_studies,
    note_census,
    seen_in,
    studies_of,
)
from runner.inventory.census import (
    Answer,
    CensusRefused,
    Keys,
    Outcome,
    take_census,
)
from runner.inventory.model import (
    Census,
    Inventory,
)
from runner.inventory.windows import Window, date_windows

__all__ = ["Window", "date_windows", "inventory_by_cfind", "study_query"]

# A C-FIND that ends with these says it answered only part: split it, do not give up on it.
_FULL = frozenset({StatusCategory.OUT_OF_RESOURCES, StatusCategory.CANCEL})


# --- devices: the first healthy one, failing over ---------------------------------------


@dataclass
class _Devices:
    """The devices in order of preference, and which one is in use."""

    devices: Sequence[tuple[str, Peer]]
    calling_ae: str
    settings: DicomSettings
    notes: list[str]
    index: int = -1
    down: list[str] = field(default_factory=list)
    _session: FindSession | None = None

    @property
    def current(self) -> tuple[str, Peer]:
        return self.devices[self.index]

    def session(self) -> FindSession:
        """The queries to the device in use, on one association (a new one per device)."""
        peer = self.current[1]
        if self._session is None or self._session.peer != peer:
            self.close()
            self._session = FindSession(peer, self.calling_ae, self.settings)
        return self._session

    def close(self) -> None:
        """Release the association of the census's queries."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def next_healthy(self) -> tuple[str, Peer]:
        """Move on to the next device that answers C-ECHO; DicomError when none is left."""
        while self.index + 1 < len(self.devices):
            self.index += 1
            device_id, peer = self.devices[self.index]
            echo = c_echo(peer, self.calling_ae, self.settings)
            if echo.ok:
                if self.down:
                    self.notes.append(f"used device {device_id}; did not answer: {self._down()}")
                return device_id, peer
            self.down.append(f"{device_id} ({peer}: {echo.detail})")
        raise DicomError(f"no device answered C-ECHO: {self._down()}")

    def alive(self, peer: Peer) -> bool:
        return c_echo(peer, self.calling_ae, self.settings).ok

    def _down(self) -> str:
        return "; ".join(self.down)


def study_query(keys: Keys) -> Dataset:
    """The study-level identifier for one census query: its keys and the values it needs."""
    query = Dataset()
    query.StudyInstanceUID = ""
    query.StudyDate = keys.date_key
    query.PatientID = keys.patient_key
    query.AccessionNumber = ""
    query.ModalitiesInStudy = ""
    query.NumberOfStudyRelatedInstances = ""
    query.InstanceAvailability = ""
    query.SOPClassesInStudy = ""
    return query


def _query(devices: _Devices) -> Callable[[Keys], Answer[StudyAnswer]]:
    def query(keys: Keys) -> Answer[StudyAnswer]:
        while True:
            device_id, peer = devices.current
            outcome = devices.session().ask("STUDY", study_query(keys))
            if outcome.ok or not outcome.category.is_transport or devices.alive(peer):
                return _answer(device_id, peer, outcome)
            devices.down.append(f"{device_id} ({peer}: {outcome.detail})")
            devices.next_healthy()

    return query


def _answer(device_id: str, peer: Peer, outcome: FindOutcome) -> Answer[StudyAnswer]:
    records = tuple(StudyAnswer(device_id, peer, ds) for ds in outcome.identifiers)
    if outcome.ok:
        return Answer(records, Outcome.ANSWERED)
    if outcome.category in _FULL:
        return Answer(records, Outcome.FULL, outcome.detail)
    return Answer(records, Outcome.REFUSED, f"{device_id}: {outcome.detail}")


# --- counts: series- or image-level, where the study-level answer has none ---------------


@dataclass(frozen=True, slots=True)
class _Summary:
    modalities: tuple[str, ...]
    instances: int | None


Ask = Callable[[FoundStudy, str, Dataset], FindOutcome]  # a study's peer, level, query


def _series_summary(found: FoundStudy, ask: Ask) -> _Summary:
    """Modalities and instance count of one study from a SERIES-level query."""
    query = Dataset()
    query.StudyInstanceUID = found.uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.NumberOfSeriesRelatedInstances = ""
    outcome = ask(found, "SERIES", query)
    if not outcome.ok:
        return _Summary((), None)
    series = outcome.identifiers
    modalities = tuple(dict.fromkeys(m for ds in series for m in answer_values(ds, "Modality")))
    counts = [answer_count(ds, "NumberOfSeriesRelatedInstances") for ds in series]
    if not counts or None in counts:
        return _Summary(modalities, None)
    return _Summary(modalities, sum(c for c in counts if c is not None))


def _image_summary(found: FoundStudy, ask: Ask) -> _Summary:
    """Modalities and instance count of one study from an IMAGE-level query: exact."""
    query = Dataset()
    query.StudyInstanceUID = found.uid
    query.SeriesInstanceUID = ""
    query.SOPInstanceUID = ""
    query.Modality = ""
    outcome = ask(found, "IMAGE", query)
    if not outcome.ok:
        return _Summary((), None)
    uids = {answer_text(ds, "SOPInstanceUID") for ds in outcome.identifiers} - {""}
    modalities = tuple(dict.fromkeys(m for ds in outcome.identifiers
                                     for m in answer_values(ds, "Modality")))
    return _Summary(modalities, len(uids))


def _complete(studies: list[FoundStudy], mode: str, calling_ae: str, settings: DicomSettings,
              notes: list[str]) -> list[FoundStudy]:
    """Fill instance counts and modalities the study-level answers lack (`mode`: auto asks
    only for those; series and image ask for every study)."""
    gaps = [s for s in studies if mode != "auto" or s.instances is None or not s.modalities]
    if not gaps:
        return studies
    summary = _image_summary if mode == "image" else _series_summary
    filled: dict[str, FoundStudy] = {}
    sessions: dict[Peer, FindSession] = {}  # one association per device for all the studies

    def ask(found: FoundStudy, level: str, query: Dataset) -> FindOutcome:
        if found.peer not in sessions:
            sessions[found.peer] = FindSession(found.peer, calling_ae, settings)
        return sessions[found.peer].ask(level, query)

    try:
        for study in gaps:
            got = summary(study, ask)
            counted = study.instances if mode == "auto" and study.instances is not None \
                else got.instances if got.instances is not None else study.instances
            filled[study.uid] = replace(study, modalities=study.modalities or got.modalities,
                                        instances=counted)
    finally:
        for session in sessions.values():
            session.close()
    _note_gaps(studies, gaps, filled, mode, notes)
    return [filled.get(study.uid, study) for study in studies]


def _note_gaps(studies: list[FoundStudy], gaps: list[FoundStudy], filled: dict[str, FoundStudy],
               mode: str, notes: list[str]) -> None:
    total = len(studies)
    level = "IMAGE" if mode == "image" else "SERIES"
    if mode != "auto":
        unknown = sum(1 for s in gaps if filled[s.uid].instances is None)
        notes.append(f"instances counted by a {level}-level query for each of {total} studies"
                     + (f"; not answered for {unknown}" if unknown else ""))
    no_count = [s.uid for s in gaps if s.instances is None]
    if no_count and mode == "auto":
        counted = sum(1 for uid in no_count if filled[uid].instances is not None)
        notes.append(
            f"NumberOfStudyRelatedInstances not answered for {len(no_count)} of {total} studies:"
            f" counted from a SERIES-level query (NumberOfSeriesRelatedInstances) for {counted},"
            f" unknown for {len(no_count) - counted}"
        )
    no_modality = [s.uid for s in gaps if not s.modalities]
    if no_modality:
        known = sum(1 for uid in no_modality if filled[uid].modalities)
        notes.append(
            f"ModalitiesInStudy not answered for {len(no_modality)} of {total} studies:"
            f" taken from a {level}-level query for {known}, unknown for"
            f" {len(no_modality) - known}"
        )


@dataclass(frozen=True, slots=True)
class CensusRequest:
    """What to ask the source: the date range, the sweep, the answer cap, the counts."""

    date_from: date
    date_to: date
    window_days: int
    sweep: bool = True
    max_results: int = 1000
    instance_counts: str = "auto"
    modalities: Sequence[str] = field(default_factory=tuple)
    since: date | None = None


def inventory_by_cfind(devices: Sequence[tuple[str, Peer]], calling_ae: str,
                       settings: DicomSettings, request: CensusRequest) -> Inventory:
    """The census of the source by STUDY-ROOT C-FIND (see runner.inventory.census).

    `devices` are (device id, peer) in order of preference: the first that answers C-ECHO
    is queried, the next one takes over if it goes down. DicomError when none answers or
    the source refuses the census. With `request.since`, only studies dated from then on
    are asked for (no sweep): a partial census.
    """
    if not devices:
        raise ValueError("inventory_by_cfind needs at least one device")
    notes: list[str] = []
    chain = _Devices(devices, calling_ae, settings, notes)
    chain.next_healthy()
    first = max(request.date_from, request.since) if request.since else request.date_from
    windows = date_windows(first, request.date_to, request.window_days) \
        if first <= request.date_to else []
    sweep = request.sweep and request.since is None
    try:
        result = take_census(_query(chain), seen_in, windows, sweep, request.max_results)
    except CensusRefused as refused:
        raise DicomError(f"the source refused the census, nothing can be planned: {refused}"
                         ) from None
    finally:
        chain.close()
    note_census(result, notes)
    found = _complete(found_studies(result.records.values(), notes), request.instance_counts,
                      calling_ae, settings, notes)
    studies = studies_of(found, request.modalities, notes)
    method = _method(request, sweep)
    origin = (f"cfind:{','.join(device_id for device_id, _ in devices)}"
              f" {first.isoformat()}..{request.date_to.isoformat()} ({result.queries} queries)")
    census = Census(method, result.queries, result.complete, tuple(result.gaps),
                    request.since, result.cap)
    return Inventory(tuple(studies), origin=origin, notes=tuple(notes), census=census)


def _method(request: CensusRequest, sweep: bool) -> str:
    windows = f"C-FIND by date windows of {request.window_days} days"
    if request.since is not None:
        return f"{windows} from {request.since} (partial: studies dated since then)"
    if not sweep:
        return f"{windows} (no sweep: studies without a usable date are not searched)"
    return (f"{windows}, and a sweep with any Study Date split by Patient ID prefix "
            f"(finds undated and out-of-window studies)")
