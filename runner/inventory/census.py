"""The census of a source: every study it holds, found by queries that partition the archive.

Pure: the queries are made by a function given to `take_census` (C-FIND in
runner.inventory.cfind, simulated answers in tests and benchmarks). Two partitions:

- **date windows** over the profile's range, halved while an answer is full, a single day
  then split by Patient ID prefix;
- **the sweep**: one query with any Study Date (universal matching, so undated,
  malformed-dated and out-of-window studies answer too), split by Patient ID prefix
  (`1*`, `2*`, ... then `10*`, ...; an exact ID for the prefix itself) while full.

An answer is *full* when it holds `cap` records or the source refused it for its size
(0xA7xx out of resources, or a cancel). A source may also cap silently: it answers the first
N matches with success. Such an answer is always as large as any answer so far (no answer
exceeds the cap), so every answer that is (of at least 2 studies) is *probed*: split once
more. If the source capped it, its parts answer more than the whole: a query answered n
studies while the census holds more that match it, n the largest answer any query gave.
That n is the source's cap: it is learned, and every answer that reached it is split. The
two partitions check each other the same way. The census is the union of all answers, so
a study found by any query is in it.

A refused query (association rejected, aborted, a failure status other than 0xA7xx) is
not a full answer and is never split: it is tried once more, then is a gap of the census.
A source that refuses the first queries, or several in a row, stops the census.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from runner.inventory.windows import Window

T = TypeVar("T")

# The characters a Patient ID prefix is extended by: the ones a PACS matches literally. Not
# the wildcards (* ?) nor the separator (\\); not the space (trimmed as padding: " " would
# ask for every patient); not % or _ (a PACS on SQL may pass them into LIKE as wildcards:
# Orthanc answers "%*" with every study). IDs with other characters are found by queries
# of their prefix and, when those answer full, named as a gap.
PREFIX_ALPHABET = ("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "-./+#:")
MAX_PREFIX = 16
REFUSALS_IN_A_ROW = 3
# A patient whose studies answer full even for one ID: its dated studies by date windows.
EARLIEST, LATEST = date(1800, 1, 1), date(9999, 12, 31)


class Outcome(StrEnum):
    """How a query ended, as the census needs to know it."""

    ANSWERED = "answered"  # success: the records are every match, unless capped silently
    FULL = "full"  # the source said it answered only part (0xA7xx, or a cancel status)
    REFUSED = "refused"  # no answer to rely on: association refused, abort, failure status


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """The records of one query, how it ended, and why (for a refusal)."""

    records: tuple[T, ...]
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Seen:
    """What the census needs of a record: its study, date (None: none usable), patient."""

    uid: str
    study_date: date | None
    patient_id: str


@dataclass(frozen=True, slots=True)
class Keys:
    """One study-level query: a date window (None: any date, undated studies included) and
    a Patient ID prefix ("" = any; `exact`: that Patient ID only)."""

    window: Window | None
    patient: str = ""
    exact: bool = False

    @property
    def date_key(self) -> str:
        """The StudyDate key: a DA range, or "" (universal matching)."""
        return "" if self.window is None else self.window.dicom_range()

    @property
    def patient_key(self) -> str:
        """The PatientID key: "" (universal), "ABC*" (prefix) or "ABC" (exact)."""
        if self.exact:
            return self.patient
        return f"{self.patient}*" if self.patient else ""

    def __str__(self) -> str:
        where = "any date" if self.window is None else str(self.window)
        if self.exact:
            return f"{where}, one Patient ID"
        return f"{where}, Patient ID prefix of {len(self.patient)}" if self.patient else where


class CensusRefused(Exception):
    """The source refused the census outright: nothing it answered can be relied on."""


@dataclass
class CensusResult(Generic[T]):
    """Every record found (first answer per study wins), and how the census went."""

    records: dict[str, T] = field(default_factory=dict)
    queries: int = 0
    splits: int = 0
    probes: int = 0  # answers split because they were as large as any (silent cap check)
    gaps: list[str] = field(default_factory=list)
    cap: int | None = None  # learned: the source caps answers silently at this many
    disagreements: int = 0  # studies a query should have matched and did not (not a cap)

    @property
    def complete(self) -> bool:
        """No query left a gap."""
        return not self.gaps


@dataclass
class _Census(Generic[T]):
    query: Callable[[Keys], Answer[T]]
    seen: Callable[[T], Seen]
    cap: int
    result: CensusResult[T] = field(default_factory=CensusResult)
    leaves: dict[Keys, int] = field(default_factory=dict)
    largest: int = 0
    refusals_in_a_row: int = 0
    answered: int = 0
    probed: set[Keys] = field(default_factory=set)
    asked: set[Keys] = field(default_factory=set)
    prefixes_ignored: bool = False
    full_by_prefix: bool = False  # a full answer was split by Patient ID keys

    def run(self, keys: Iterable[Keys]) -> None:
        pending = list(keys)[::-1]  # a stack: each query's splits are asked right after it
        while pending:
            key = pending.pop()
            pending.extend(reversed(self._one(key)))

    def _one(self, key: Keys) -> list[Keys]:
        if (key.patient and self.prefixes_ignored) or key in self.asked:
            return []  # the two partitions meet at one patient on one day: asked once
        self.asked.add(key)
        answer = self._ask(key)
        if answer is None:
            return []
        for record in answer.records:
            self.result.records.setdefault(self.seen(record).uid, record)
        count = len(answer.records)
        largest, self.largest = self.largest, max(self.largest, count)
        full = answer.outcome is Outcome.FULL or count >= self.cap
        if not self._honoured(key, answer.records):
            return self._prefixes_ignored(key, full)
        if full:
            return self._split(key, [self.seen(r).patient_id for r in answer.records])
        self.leaves[key] = count
        if count >= 2 and count >= largest:
            return self._probe(key)
        return []

    def _prefixes_ignored(self, key: Keys, full: bool) -> list[Keys]:
        """The source answers other patients to a Patient ID key: no such key is asked any
        more. Only what needed splitting by one is a gap (a probe's parent was answered)."""
        self.prefixes_ignored = True
        if full or self.full_by_prefix:
            self.result.gaps.append(f"{key}: the source does not match Patient ID keys as "
                                    "asked (it answered other patients), so answers that were "
                                    "full cannot be split by them")
        return []

    def _honoured(self, key: Keys, records: tuple[T, ...]) -> bool:
        """Whether every answer to a Patient ID key has that ID (or prefix)."""
        if not key.patient:
            return True
        return all(_matches(key, self.seen(r).patient_id) for r in records)

    def _probe(self, key: Keys) -> list[Keys]:
        """Split an answer as large as any so far: if the source caps silently, this is
        where it shows (the parts answer more than the whole); `relearn` then sees it."""
        children = split_keys(key)
        if children:
            self.probed.add(key)
            self.result.probes += 1
        return children

    def _ask(self, key: Keys) -> Answer[T] | None:
        for _ in range(2):  # a refusal is tried once more: it may have been passing trouble
            answer = self.query(key)
            self.result.queries += 1
            if answer.outcome is not Outcome.REFUSED:
                self.refusals_in_a_row = 0
                self.answered += 1
                return answer
        self.refusals_in_a_row += 1
        if self.answered == 0 or self.refusals_in_a_row >= REFUSALS_IN_A_ROW:
            raise CensusRefused(answer.detail)
        self.result.gaps.append(f"{key}: refused ({answer.detail})")
        return None

    def _split(self, key: Keys, patients: Iterable[str]) -> list[Keys]:
        """The parts of a full answer; a gap when there are none, or when some of the
        `patients` it answered cannot be reached by its parts."""
        children = split_keys(key)
        self.full_by_prefix |= any(child.patient for child in children)
        if not children:
            self.result.gaps.append(f"{key}: the source answers only part of it (at most "
                                    f"{self.cap} studies) and it cannot be split further")
            return []
        self.result.splits += 1
        unreachable = sum(1 for patient in patients if not _reachable(key, patient))
        if unreachable:
            self.result.gaps.append(
                f"{key}: {unreachable} studies with an empty or unusual Patient ID cannot be "
                "reached by prefix queries; others like them may be missing")
        return children

    def relearn(self) -> list[Keys]:
        """After a pass: the leaves whose answers were capped silently, split; [] if none."""
        index = _Index.of(self.seen(r) for r in self.result.records.values())
        covered = {key: index.covered(key) for key in self.leaves}
        short = [(key, n) for key, n in self.leaves.items() if covered[key] > n]
        capped = {key for key, n in short if n == self.largest and n > 0}
        self.result.disagreements = sum(covered[k] - n for k, n in short if k not in capped)
        if not capped:
            return []
        self.cap = self.largest
        self.result.cap = self.cap
        again = [key for key, n in self.leaves.items() if n >= self.cap]
        children: list[Keys] = []
        for key in again:
            del self.leaves[key]
            if key not in self.probed:
                children.extend(self._split(key, ()))
            else:  # its parts were asked already: only say what they cannot reach
                self._split(key, index.patients_of(key))
        return children


def take_census(query: Callable[[Keys], Answer[T]], seen: Callable[[T], Seen],
                windows: Iterable[Window], sweep: bool, cap: int) -> CensusResult[T]:
    """Ask `query` until every study the source holds is found (see the module docstring).

    CensusRefused when the source refuses the first queries, or several in a row.
    """
    if cap < 1:
        raise ValueError(f"cap must be at least 1: {cap}")
    census = _Census(query, seen, cap)
    keys = [Keys(window) for window in windows]
    census.run([*keys, Keys(None)] if sweep else keys)
    while sweep and (again := census.relearn()):
        census.run(again)
    return census.result


def split_keys(key: Keys) -> list[Keys]:
    """The queries that together answer what `key` asks, each for less; [] when none."""
    window = key.window
    if not key.patient and not key.exact:
        if window is not None and window.days > 1:
            return [Keys(h) for h in window.halves()]
        return _prefixes(window, "")
    if key.exact:
        if window is None:
            return [Keys(Window(EARLIEST, LATEST), key.patient, True)]
        if window.days > 1:
            return [Keys(h, key.patient, True) for h in window.halves()]
        return []
    if len(key.patient) >= MAX_PREFIX:
        return []
    return [Keys(window, key.patient, True), *_prefixes(window, key.patient)]


def _prefixes(window: Window | None, prefix: str) -> list[Keys]:
    return [Keys(window, prefix + c) for c in PREFIX_ALPHABET]


def _reachable(key: Keys, patient_id: str) -> bool:
    """Whether a study of `patient_id` answered to `key` is matched by one of its parts."""
    if key.exact or (key.window is not None and key.window.days > 1 and not key.patient):
        return True
    rest = patient_id[len(key.patient):]
    if not rest:  # the prefix itself is asked for exactly; an empty Patient ID never is
        return bool(key.patient)
    return rest[0] in PREFIX_ALPHABET


@dataclass(frozen=True, slots=True)
class _Index:
    """The census's records sorted by date, by Patient ID, and by Patient ID within each
    day, to count what a query covers in a few bisections."""

    dates: list[date]
    patients: list[str]
    by_day: dict[date, list[str]]

    @classmethod
    def of(cls, seen: Iterable[Seen]) -> _Index:
        records = list(seen)
        by_day: dict[date, list[str]] = {}
        for s in records:
            if s.study_date is not None:
                by_day.setdefault(s.study_date, []).append(s.patient_id)
        for patients in by_day.values():
            patients.sort()
        return cls(sorted(s.study_date for s in records if s.study_date is not None),
                   sorted(s.patient_id for s in records), by_day)

    def patients_of(self, key: Keys) -> list[str]:
        """The Patient IDs of the studies `key` covers, where its parts split by Patient ID
        (a universal or prefix key, any date or one day); [] where they split by date."""
        if key.exact or (key.window is not None and key.window.days > 1):
            return []
        patients = self.patients if key.window is None else self.by_day.get(key.window.first,
                                                                             [])
        low = bisect_left(patients, key.patient)
        return patients[low:bisect_left(patients, key.patient + "\U0010ffff")]

    def covered(self, key: Keys) -> int:
        """How many of the census's studies `key` should have matched."""
        window = key.window
        if not key.patient and not key.exact:
            if window is None:
                return len(self.patients)
            return bisect_right(self.dates, window.last) - bisect_left(self.dates, window.first)
        if window is None:
            return _with_patient(self.patients, key)
        if window.days > len(self.by_day):
            days = [d for d in self.by_day if window.first <= d <= window.last]
        else:
            days = [d for d in (window.first + timedelta(days=n) for n in range(window.days))
                    if d in self.by_day]
        return sum(_with_patient(self.by_day[d], key) for d in days)


def _with_patient(patients: list[str], key: Keys) -> int:
    """How many of the sorted `patients` `key`'s Patient ID matches (exactly or as prefix)."""
    if key.exact:
        return bisect_right(patients, key.patient) - bisect_left(patients, key.patient)
    return (bisect_left(patients, key.patient + "\U0010ffff")
            - bisect_left(patients, key.patient))


def _matches(key: Keys, patient: str) -> bool:
    return patient == key.patient if key.exact else patient.startswith(key.patient)
