"""Live census by C-FIND: every study the source holds, with its counts, as an Inventory.

The strategy is pure (runner.inventory.census: date windows, the sweep with any date, splits
while an answer is full, a silent cap learned); this module asks the source: it picks the
first device that answers C-ECHO, fails over to the next when one goes down, sorts each
answer into answered / full / refused, and fills what study-level answers lack (instance
counts from SERIES- or IMAGE-level queries, tier assumed local) with a note for each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from pydicom import Dataset

from runner.dicom.echo import c_echo
from runner.dicom.find import FindOutcome, c_find
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.status import StatusCategory
from runner.errors import DicomError
from runner.inventory.census import (
    Answer,
    CensusRefused,
    CensusResult,
    Keys,
    Outcome,
    Seen,
    take_census,
)
from runner.inventory.model import (
    AVAILABILITY_NOTE,
    AVAILABILITY_TO_LOCATION,
    Census,
    Inventory,
    Location,
    Study,
)
from runner.inventory.windows import Window, date_windows

__all__ = ["Window", "date_windows", "inventory_by_cfind", "study_query"]

# Modalities that are not images; a study's primary modality is an image one when it can be.
_NON_IMAGE = frozenset({"SR", "PR", "KO", "DOC", "REG", "SEG", "RWV", "PLAN"})
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

    @property
    def current(self) -> tuple[str, Peer]:
        return self.devices[self.index]

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


@dataclass(frozen=True, slots=True)
class _Answer:
    """One study-level answer and the device that gave it."""

    device_id: str
    peer: Peer
    identifier: Dataset


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


def _query(devices: _Devices) -> Callable[[Keys], Answer[_Answer]]:
    def query(keys: Keys) -> Answer[_Answer]:
        while True:
            device_id, peer = devices.current
            outcome = c_find(peer, devices.calling_ae, devices.settings, "STUDY",
                             study_query(keys))
            if outcome.ok or not outcome.category.is_transport or devices.alive(peer):
                return _answer(device_id, peer, outcome)
            devices.down.append(f"{device_id} ({peer}: {outcome.detail})")
            devices.next_healthy()

    return query


def _answer(device_id: str, peer: Peer, outcome: FindOutcome) -> Answer[_Answer]:
    records = tuple(_Answer(device_id, peer, ds) for ds in outcome.identifiers)
    if outcome.ok:
        return Answer(records, Outcome.ANSWERED)
    if outcome.category in _FULL:
        return Answer(records, Outcome.FULL, outcome.detail)
    return Answer(records, Outcome.REFUSED, f"{device_id}: {outcome.detail}")


# --- answers to studies ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    """A study-level answer, parsed; counts and modalities may still be missing."""

    uid: str
    study_date: date | None
    raw_date: str
    modalities: tuple[str, ...]
    instances: int | None
    availability: str
    patient_id: str
    device_id: str
    peer: Peer
    sop_classes: tuple[str, ...] = ()
    accession: str = ""


def _values(ds: Dataset, keyword: str) -> tuple[str, ...]:
    value = ds.get(keyword)
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(str(item).strip().upper() for item in items if str(item).strip())


def _count(ds: Dataset, keyword: str) -> int | None:
    text = str(ds.get(keyword, "") or "").strip()
    return int(text) if text.isdigit() else None


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except (ValueError, TypeError):  # a value pydicom cannot convert: keep none
        return ""


def parse_study_date(text: str) -> date | None:
    """A DA value as a date; None when empty or not a real YYYYMMDD date."""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _parse(answer: _Answer) -> _Found | None:
    ds = answer.identifier
    uid = _text(ds, "StudyInstanceUID")
    if not uid:
        return None
    raw = _raw_date(ds)
    return _Found(
        uid=uid,
        study_date=parse_study_date(raw),
        raw_date=raw,
        modalities=_values(ds, "ModalitiesInStudy"),
        instances=_count(ds, "NumberOfStudyRelatedInstances"),
        availability=_text(ds, "InstanceAvailability").upper(),
        patient_id=_text(ds, "PatientID"),
        device_id=answer.device_id,
        peer=answer.peer,
        sop_classes=_values(ds, "SOPClassesInStudy"),
        accession=_text(ds, "AccessionNumber"),
    )


def _raw_date(ds: Dataset) -> str:
    """The StudyDate as the source sent it (pydicom may hold it as text or a DA)."""
    element = ds.get((0x0008, 0x0020))
    if element is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    if isinstance(value, date):
        return f"{value.year:04d}{value.month:02d}{value.day:02d}"
    return str(value or "").strip()


def _seen(answer: _Answer) -> Seen:
    ds = answer.identifier
    return Seen(_text(ds, "StudyInstanceUID"), parse_study_date(_raw_date(ds)),
                _text(ds, "PatientID"))


def _found(answers: Iterable[_Answer], notes: list[str]) -> list[_Found]:
    found: list[_Found] = []
    unusable = 0
    for answer in answers:
        parsed = _parse(answer)
        if parsed is None:
            unusable += 1
        else:
            found.append(parsed)
    if unusable:
        notes.append(f"{unusable} answers without a StudyInstanceUID ignored")
    return found


# --- counts: series- or image-level, where the study-level answer has none ---------------


@dataclass(frozen=True, slots=True)
class _Summary:
    modalities: tuple[str, ...]
    instances: int | None


def _series_summary(found: _Found, calling_ae: str, settings: DicomSettings) -> _Summary:
    """Modalities and instance count of one study from a SERIES-level query."""
    query = Dataset()
    query.StudyInstanceUID = found.uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.NumberOfSeriesRelatedInstances = ""
    outcome = c_find(found.peer, calling_ae, settings, "SERIES", query)
    if not outcome.ok:
        return _Summary((), None)
    series = outcome.identifiers
    modalities = tuple(dict.fromkeys(m for ds in series for m in _values(ds, "Modality")))
    counts = [_count(ds, "NumberOfSeriesRelatedInstances") for ds in series]
    if not counts or None in counts:
        return _Summary(modalities, None)
    return _Summary(modalities, sum(c for c in counts if c is not None))


def _image_summary(found: _Found, calling_ae: str, settings: DicomSettings) -> _Summary:
    """Modalities and instance count of one study from an IMAGE-level query: exact."""
    query = Dataset()
    query.StudyInstanceUID = found.uid
    query.SeriesInstanceUID = ""
    query.SOPInstanceUID = ""
    query.Modality = ""
    outcome = c_find(found.peer, calling_ae, settings, "IMAGE", query)
    if not outcome.ok:
        return _Summary((), None)
    uids = {_text(ds, "SOPInstanceUID") for ds in outcome.identifiers} - {""}
    modalities = tuple(dict.fromkeys(m for ds in outcome.identifiers
                                     for m in _values(ds, "Modality")))
    return _Summary(modalities, len(uids))


def _complete(studies: list[_Found], mode: str, calling_ae: str, settings: DicomSettings,
              notes: list[str]) -> list[_Found]:
    """Fill instance counts and modalities the study-level answers lack (`mode`: auto asks
    only for those; series and image ask for every study)."""
    gaps = [s for s in studies if mode != "auto" or s.instances is None or not s.modalities]
    if not gaps:
        return studies
    summary = _image_summary if mode == "image" else _series_summary
    filled: dict[str, _Found] = {}
    for study in gaps:
        got = summary(study, calling_ae, settings)
        counted = study.instances if mode == "auto" and study.instances is not None \
            else got.instances if got.instances is not None else study.instances
        filled[study.uid] = replace(study, modalities=study.modalities or got.modalities,
                                    instances=counted)
    _note_gaps(studies, gaps, filled, mode, notes)
    return [filled.get(study.uid, study) for study in studies]


def _note_gaps(studies: list[_Found], gaps: list[_Found], filled: dict[str, _Found],
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


def _primary_modality(modalities: tuple[str, ...], wanted: Sequence[str]) -> str:
    wanted_upper = {m.upper() for m in wanted}
    for candidates in (
        [m for m in modalities if m in wanted_upper],
        [m for m in modalities if m not in _NON_IMAGE],
        list(modalities),
    ):
        if candidates:
            return candidates[0]
    return ""


def _location(availability: str) -> Location | None:
    return AVAILABILITY_TO_LOCATION.get(availability)


def _studies(found: list[_Found], modalities: Sequence[str], notes: list[str]) -> list[Study]:
    unknown_tier = Counter(
        s.availability or "(none)" for s in found if _location(s.availability) is None
    )
    if unknown_tier:
        shown = ", ".join(f"{value}: {count}" for value, count in sorted(unknown_tier.items()))
        notes.append(
            f"{AVAILABILITY_NOTE} or not recognised for {unknown_tier.total()}"
            f" of {len(found)} studies ({shown}): assumed local"
        )
    return [
        Study(
            study_uid=s.uid,
            study_date=s.study_date,
            modality=_primary_modality(s.modalities, modalities),
            instances=s.instances,
            size_mb=None,
            location=_location(s.availability) or Location.LOCAL,
            device=s.device_id,
            patient_id=s.patient_id,
            raw_date=s.raw_date if s.study_date is None else "",
            sop_classes=s.sop_classes,
            accession=s.accession,
        )
        for s in found
    ]


def _note_census(result: CensusResult[_Answer], notes: list[str]) -> None:
    if result.splits:
        notes.append(f"{result.splits} queries split because their answer was full;"
                     f" {result.queries} study-level queries in all")
    if result.cap is not None:
        notes.append(f"the source answers at most {result.cap} studies per query without "
                     "saying so: learned from answers that disagreed, and every query that "
                     "reached it was split")
    if result.disagreements:
        notes.append(f"{result.disagreements} studies were found by one query and not by "
                     "another that should have matched them (the source matches dates "
                     "differently): both kept in the census")
    for gap in result.gaps:
        notes.append(f"census gap: {gap}; studies may be missing")


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
        result = take_census(_query(chain), _seen, windows, sweep, request.max_results)
    except CensusRefused as refused:
        raise DicomError(f"the source refused the census, nothing can be planned: {refused}"
                         ) from None
    _note_census(result, notes)
    found = _complete(_found(result.records.values(), notes), request.instance_counts,
                      calling_ae, settings, notes)
    studies = _studies(found, request.modalities, notes)
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
