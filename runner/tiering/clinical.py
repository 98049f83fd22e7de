"""The hospital around the migration: new studies arriving, clinicians reading, re-dating."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from runner.tiering.model import LocalStore
from runner.tiering.params import TierParameters

DAY_SECONDS = 86400.0


@dataclass(frozen=True, slots=True)
class Workload:
    """The clinical activity the forecast assumes, per day."""

    new_studies_per_day: float
    new_study_mb: float
    reads_per_day: float

    @classmethod
    def of(cls, params: TierParameters, recent: Sequence[float]) -> Workload:
        """The parameters' rates, or the inventory's over the last `history_days`, given the
        sizes of the studies acquired then (`recent`)."""
        days = params.history_days
        per_day = params.new_studies_per_day
        if per_day is None:
            per_day = len(recent) / days
        mb_per_day = params.new_mb_per_day
        if mb_per_day is None:
            mb_per_day = sum(recent) / days if recent else per_day * params.new_study_mb
        each = mb_per_day / per_day if per_day > 0 else 0.0
        reads = params.clinical_reads_per_day
        return cls(per_day, each, per_day if reads is None else reads)


@dataclass(slots=True)
class _Process:
    """A periodic activity: what it does and when it next does it."""

    next_time: float
    every: float
    action: Callable[[], None]


def _next_time(process: _Process) -> float:
    return process.next_time


class Clinic:
    """Drives the store with the hospital's own activity, in simulated seconds.

    `recent` holds the keys of clinically recent studies in acquisition order (with their
    acquisition days); new studies join it, and it slides forward a day at a time. Each
    re-date round takes the census's studies in the window as it is then (as the runner
    works its list out each round); clinicians read recent studies, new ones included, and,
    `prior_read_share` of the time, older ones.
    """

    def __init__(self, store: LocalStore[int], workload: Workload, params: TierParameters,
                 recent: list[tuple[int, int]], next_key: int, redate: bool,
                 priors: Sequence[int] = (), not_local: Container[int] = frozenset(),
                 on_redate: Callable[[list[int]], int] | None = None) -> None:
        self.store = store
        self.priors = priors  # older studies a clinician may open as priors
        self.prior_share = params.prior_read_share
        self.not_local = not_local  # recent studies the runner does not re-date (not local)
        self.on_redate = on_redate  # hands a round's studies to the devices (None: free)
        self.workload = workload
        self.recent_days = params.recent_days
        self.recent = recent
        self.first = 0
        self.next_key = next_key
        self.census = next_key  # keys below are the census's studies; above, new arrivals
        self.rng = random.Random(params.seed)
        self.redates = 0
        self.rounds = 0
        self.redate = redate
        self.headroom_fraction = params.redate_headroom_fraction
        self.entered = 0.0  # MB that entered the store since the last round
        self.threshold = math.inf  # ... at which the next round starts early
        self.processes = self._processes(params, redate)
        self.next_time = min((p.next_time for p in self.processes), default=math.inf)

    def _processes(self, params: TierParameters, redate: bool) -> list[_Process]:
        processes = [_Process(DAY_SECONDS, DAY_SECONDS, self._new_day)]
        if self.workload.new_studies_per_day > 0:
            every = DAY_SECONDS / self.workload.new_studies_per_day
            processes.append(_Process(every, every, self._arrival))
        if self.workload.reads_per_day > 0:
            every = DAY_SECONDS / self.workload.reads_per_day
            processes.append(_Process(every, every, self._read))
        if redate:
            processes.append(_Process(0.0, params.redate_every_hours * 3600.0, self._redate))
        return processes

    def fire(self) -> float:
        """Do the next activity (the earliest; the first listed on a tie); returns its time.

        `next_time` is then when the one after it happens."""
        process = min(self.processes, key=_next_time)
        now = process.next_time
        process.action()
        process.next_time = now + process.every
        self.next_time = min(p.next_time for p in self.processes)
        return now

    def _new_day(self) -> None:
        self.store.today += 1
        since = self.store.today - self.recent_days
        while self.first < len(self.recent) and self.recent[self.first][1] < since:
            self.first += 1

    def entered_store(self, megabytes: float) -> None:
        """Data entered the local store (a recall, a new study): a re-date round starts at
        once when enough did since the last one that recent studies near its end."""
        self.entered += megabytes
        if self.entered >= self.threshold:
            self._redate()

    def _arrival(self) -> None:
        key = self.next_key
        self.next_key += 1
        self.store.arrive(key, self.workload.new_study_mb, self.store.today)
        self.recent.append((key, self.store.today))
        if self.redate:
            self.entered_store(self.workload.new_study_mb)

    def _read(self) -> None:
        """A clinician opens a recent study, or (`prior_read_share` of reads) an older prior."""
        rng = self.rng
        if self.priors and rng.random() < self.prior_share:
            key = self.priors[rng.randrange(len(self.priors))]
        elif self.first < len(self.recent):
            key = self.recent[rng.randrange(self.first, len(self.recent))][0]
        else:
            return
        recalled = self.store.access(key)
        if recalled and self.redate:
            self.entered_store(recalled)

    def _redate(self) -> None:
        """A round: every recent study of the census that was local (the window slides with
        the date; new arrivals are not in the census, as for the runner) is re-dated, by a
        retrieve through the devices (`on_redate`), else at once."""
        store = self.store
        census, skip = self.census, self.not_local
        keys = [key for key, _ in self.recent[self.first:] if key < census and key not in skip]
        if self.on_redate is None:
            keys = [key for key in keys if store.refresh(key)]
            self.redates += len(keys)
        else:
            self.redates += self.on_redate(keys)
        recent_mb = sum(store.size_of(key) for key in keys if store.is_local(key))
        self.rounds += 1
        self.entered = 0.0
        headroom = self.store.low_water_mb - recent_mb
        self.threshold = headroom * self.headroom_fraction if self.headroom_fraction > 0 \
            and headroom > 0 else math.inf
