"""Live inventory by C-FIND: study-level queries by date windows, split in halves while too big.

The windowing is pure (`date_windows`, `sweep_windows`, driven by any query function), the
DICOM side is `inventory_by_cfind`: it picks the first device that answers C-ECHO, fails
over to the next when one goes down, and fills gaps in the answers (instance counts from a
SERIES-level query, tier assumed local) with a note in `Inventory.notes` for each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar

from pydicom import Dataset

from runner.dicom.echo import c_echo
from runner.dicom.find import FindOutcome, c_find
from runner.dicom.peer import DicomSettings, Peer
from runner.errors import DicomError
from runner.inventory.model import AVAILABILITY_TO_LOCATION, Inventory, Location, Study

T = TypeVar("T")

# Modalities that are not images; a study's primary modality is an image one when it can be.
_NON_IMAGE = frozenset({"SR", "PR", "KO", "DOC", "REG", "SEG", "RWV", "PLAN"})


# --- windows: pure ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A closed range of study dates, first and last day included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        """How many days the window covers."""
        return (self.last - self.first).days + 1

    def halves(self) -> tuple[Window, Window]:
        """The window split into two (the first half is the shorter one for odd lengths)."""
        if self.days < 2:
            raise ValueError(f"a single day cannot be split: {self}")
        middle = self.first + timedelta(days=self.days // 2)
        return Window(self.first, middle - timedelta(days=1)), Window(middle, self.last)

    def dicom_range(self) -> str:
        """The window as a DICOM DA range ("YYYYMMDD-YYYYMMDD", or one date)."""
        first, last = self.first.strftime("%Y%m%d"), self.last.strftime("%Y%m%d")
        return first if first == last else f"{first}-{last}"

    def __str__(self) -> str:
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def date_windows(date_from: date, date_to: date, window_days: int) -> list[Window]:
    """Consecutive windows of `window_days` covering [date_from, date_to] (last one shorter)."""
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1: {window_days}")
    if date_to < date_from:
        raise ValueError(f"date_to {date_to} is before date_from {date_from}")
    step = timedelta(days=window_days)
    windows: list[Window] = []
    first = date_from
    while first <= date_to:
        windows.append(Window(first, min(first + step - timedelta(days=1), date_to)))
        first += step
    return windows


@dataclass(frozen=True, slots=True)
class WindowAnswer(Generic[T]):
    """What one query of one window gave: its records, and whether the query succeeded."""

    records: tuple[T, ...]
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Sweep(Generic[T]):
    """Every record of a sweep, the single days that could not be answered fully, how many
    queries it took and how many windows were split."""

    records: tuple[T, ...]
    failed_days: tuple[tuple[Window, str], ...]
    queries: int
    splits: int


def sweep_windows(
    windows: Iterable[Window], query: Callable[[Window], WindowAnswer[T]], max_results: int
) -> Sweep[T]:
    """Query each window in date order; a window whose query fails or whose answers reach
    `max_results` is split in halves and queried again, down to single days.

    A single day that still fails or is still full keeps whatever it answered and is
    listed in `failed_days` with the reason. Every split shortens a window, so this ends.
    """
    if max_results < 1:
        raise ValueError(f"max_results must be at least 1: {max_results}")
    pending = sorted(windows, reverse=True)
    records: list[T] = []
    failed: list[tuple[Window, str]] = []
    queries = splits = 0
    while pending:
        window = pending.pop()
        answer = query(window)
        queries += 1
        full = len(answer.records) >= max_results
        if answer.ok and not full:
            records.extend(answer.records)
        elif window.days > 1:
            first, second = window.halves()
            pending.extend((second, first))
            splits += 1
        else:
            records.extend(answer.records)
            why = answer.detail if not answer.ok else f"answers reached max_results={max_results}"
            failed.append((window, why))
    return Sweep(tuple(records), tuple(failed), queries, splits)


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


def study_query(window: Window, modalities: Sequence[str]) -> Dataset:
    """The study-level identifier for one window: the keys the inventory needs."""
    query = Dataset()
    query.StudyInstanceUID = ""
    query.StudyDate = window.dicom_range()
    query.ModalitiesInStudy = list(modalities) if len(modalities) > 1 else "".join(modalities)
    query.NumberOfStudyRelatedInstances = ""
    query.InstanceAvailability = ""
    query.PatientID = ""
    query.SOPClassesInStudy = ""
    return query


def _query_window(
    devices: _Devices, modalities: Sequence[str]
) -> Callable[[Window], WindowAnswer[_Answer]]:
    def query(window: Window) -> WindowAnswer[_Answer]:
        while True:
            device_id, peer = devices.current
            identifier = study_query(window, modalities)
            outcome = c_find(peer, devices.calling_ae, devices.settings, "STUDY", identifier)
            if outcome.ok or not outcome.category.is_transport or devices.alive(peer):
                return _window_answer(device_id, peer, outcome)
            devices.down.append(f"{device_id} ({peer}: {outcome.detail})")
            devices.next_healthy()

    return query


def _window_answer(device_id: str, peer: Peer, outcome: FindOutcome) -> WindowAnswer[_Answer]:
    records = tuple(_Answer(device_id, peer, ds) for ds in outcome.identifiers)
    return WindowAnswer(records, outcome.ok, f"{device_id}: {outcome.detail}")


# --- answers to studies ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    """A study-level answer, parsed; counts and modalities may still be missing."""

    uid: str
    study_date: date
    modalities: tuple[str, ...]
    instances: int | None
    availability: str
    patient_id: str
    device_id: str
    peer: Peer
    sop_classes: tuple[str, ...] = ()


def _values(ds: Dataset, keyword: str) -> tuple[str, ...]:
    value = ds.get(keyword)
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(str(item).strip().upper() for item in items if str(item).strip())


def _count(ds: Dataset, keyword: str) -> int | None:
    text = str(ds.get(keyword, "") or "").strip()
    return int(text) if text.isdigit() else None


def _parse(answer: _Answer) -> _Found | None:
    ds = answer.identifier
    uid = str(ds.get("StudyInstanceUID", "") or "").strip()
    try:
        study_date = datetime.strptime(str(ds.get("StudyDate", "")).strip(), "%Y%m%d").date()
    except ValueError:
        return None
    if not uid:
        return None
    return _Found(
        uid=uid,
        study_date=study_date,
        modalities=_values(ds, "ModalitiesInStudy"),
        instances=_count(ds, "NumberOfStudyRelatedInstances"),
        availability=str(ds.get("InstanceAvailability", "") or "").strip().upper(),
        patient_id=str(ds.get("PatientID", "") or ""),
        device_id=answer.device_id,
        peer=answer.peer,
        sop_classes=_values(ds, "SOPClassesInStudy"),
    )


def _first_per_uid(answers: Iterable[_Answer], notes: list[str]) -> list[_Found]:
    found: dict[str, _Found] = {}
    unusable = 0
    for answer in answers:
        parsed = _parse(answer)
        if parsed is None:
            unusable += 1
        elif parsed.uid not in found:
            found[parsed.uid] = parsed
    if unusable:
        notes.append(f"{unusable} answers without a StudyInstanceUID or a valid StudyDate ignored")
    return list(found.values())


@dataclass(frozen=True, slots=True)
class _SeriesSummary:
    modalities: tuple[str, ...]
    instances: int | None


def _series_summary(found: _Found, calling_ae: str, settings: DicomSettings) -> _SeriesSummary:
    """Modalities and instance count of one study from a SERIES-level query."""
    query = Dataset()
    query.StudyInstanceUID = found.uid
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.NumberOfSeriesRelatedInstances = ""
    outcome = c_find(found.peer, calling_ae, settings, "SERIES", query)
    if not outcome.ok:
        return _SeriesSummary((), None)
    series = outcome.identifiers
    modalities = tuple(dict.fromkeys(m for ds in series for m in _values(ds, "Modality")))
    counts = [_count(ds, "NumberOfSeriesRelatedInstances") for ds in series]
    if not counts or None in counts:
        return _SeriesSummary(modalities, None)
    return _SeriesSummary(modalities, sum(c for c in counts if c is not None))


def _complete(
    studies: list[_Found], calling_ae: str, settings: DicomSettings, notes: list[str]
) -> list[_Found]:
    """Fill missing instance counts and modalities from SERIES-level queries."""
    gaps = [s for s in studies if s.instances is None or not s.modalities]
    if not gaps:
        return studies
    filled: dict[str, _Found] = {}
    for study in gaps:
        summary = _series_summary(study, calling_ae, settings)
        filled[study.uid] = replace(
            study,
            modalities=study.modalities or summary.modalities,
            instances=summary.instances if study.instances is None else study.instances,
        )
    _note_gaps(studies, gaps, filled, notes)
    return [filled.get(study.uid, study) for study in studies]


def _note_gaps(
    studies: list[_Found], gaps: list[_Found], filled: dict[str, _Found], notes: list[str]
) -> None:
    total = len(studies)
    no_count = [s.uid for s in gaps if s.instances is None]
    if no_count:
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
            f" taken from a SERIES-level query for {known}, unknown for {len(no_modality) - known}"
        )


def _matches(study: _Found, wanted: frozenset[str]) -> bool:
    return not wanted or not study.modalities or bool(wanted.intersection(study.modalities))


def _wanted(studies: list[_Found], modalities: Sequence[str], notes: list[str]) -> list[_Found]:
    """Studies with one of `modalities` (all when none given); unknown ones are kept."""
    wanted = frozenset(m.upper() for m in modalities)
    kept = [s for s in studies if _matches(s, wanted)]
    unknown = sum(1 for s in kept if not s.modalities)
    if wanted and unknown:
        notes.append(f"{unknown} studies of unknown modality kept despite the modality filter")
    return kept


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
            f"InstanceAvailability not answered or not recognised for {unknown_tier.total()}"
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
            sop_classes=s.sop_classes,
        )
        for s in found
    ]


def _note_sweep(sweep: Sweep[_Answer], max_results: int, notes: list[str]) -> None:
    if sweep.splits:
        notes.append(
            f"{sweep.splits} date windows split in halves (C-FIND failed or answers reached"
            f" max_results={max_results}); {sweep.queries} study-level queries in all"
        )
    for day, why in sweep.failed_days:
        notes.append(f"C-FIND incomplete for single day {day}: {why}; studies may be missing")


def inventory_by_cfind(
    devices: Sequence[tuple[str, Peer]],
    calling_ae: str,
    settings: DicomSettings,
    date_from: date,
    date_to: date,
    window_days: int,
    modalities: Sequence[str],
    max_results: int = 1000,
) -> Inventory:
    """Inventory the source by STUDY-ROOT, study-level C-FIND over [date_from, date_to].

    `devices` are (device id, peer) in order of preference: the first that answers C-ECHO
    is queried, the next one takes over if it goes down; DicomError when none answers.
    Studies are unique by StudyInstanceUID (the first device to answer one wins).
    """
    if not devices:
        raise ValueError("inventory_by_cfind needs at least one device")
    notes: list[str] = []
    chain = _Devices(devices, calling_ae, settings, notes)
    chain.next_healthy()
    windows = date_windows(date_from, date_to, window_days)
    sweep = sweep_windows(windows, _query_window(chain, modalities), max_results)
    _note_sweep(sweep, max_results, notes)
    wanted = frozenset(m.upper() for m in modalities)
    candidates = [s for s in _first_per_uid(sweep.records, notes) if _matches(s, wanted)]
    found = _complete(candidates, calling_ae, settings, notes)
    studies = _studies(_wanted(found, modalities, notes), modalities, notes)
    origin = (
        f"cfind:{','.join(device_id for device_id, _ in devices)}"
        f" {date_from.isoformat()}..{date_to.isoformat()} ({sweep.queries} queries)"
    )
    return Inventory(tuple(studies), origin=origin, notes=tuple(notes))
