"""The hospital around the migration: new studies arriving, clinicians reading, re-dating."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from datetime import date

from runner.inventory.model import Study, planned_mb
from runner.profile.tiers import Location
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


def expected_inflow(params: TierParameters, studies: Sequence[Study], today: date,
                    size: Callable[[Study], float] = planned_mb) -> float:
    """MB a second the hospital is expected to bring into the local store besides the
    migration's own recalls: new studies (the workload of `Workload.of`, from the studies
    acquired over the last `history_days` unless the parameters say), and clinicians' reads
    of priors (studies older than `recent_days`) not on the store, each recalled whole.

    The runner counts it towards its next re-date round as time passes, since it sees
    neither (runner.execute.redate), and so does the model (`Clinic`): the same figure on
    both sides, from the plan's studies (each of the MB `size` gives: as planned, or as a
    pilot run measured them)."""
    first = today.toordinal() - params.history_days + 1
    history = [size(s) for s in studies
               if first <= s.sort_date.toordinal() <= today.toordinal()]
    workload = Workload.of(params, history)
    since = today.toordinal() - params.recent_days
    priors = [s for s in studies if s.sort_date.toordinal() < since]
    away = sum(size(s) for s in priors if s.location is not Location.LOCAL)
    reads = (workload.reads_per_day * params.prior_read_share * away / len(priors)
             if priors else 0.0)
    return (workload.new_studies_per_day * workload.new_study_mb + reads) / DAY_SECONDS


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
    re-date round takes the studies in the window as it is then, new arrivals included (as
    the runner works its list out each round); clinicians read recent studies, new ones
    included, and, `prior_read_share` of the time, older ones.
    """

    def __init__(self, store: LocalStore[int], workload: Workload, params: TierParameters,
                 recent: list[tuple[int, int]], next_key: int, redate: bool,
                 priors: Sequence[int] = (), not_local: Container[int] = frozenset(),
                 on_redate: Callable[[list[int]], int] | None = None,
                 inflow_mb_per_s: float = 0.0) -> None:
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
        self.rng = random.Random(params.seed)
        self.redates = 0
        self.rounds = 0
        self.redate = redate
        self.headroom_fraction = params.redate_headroom_fraction
        self.entered = 0.0  # MB counted towards the next round since the last one
        self.threshold = math.inf  # ... at which the next round starts early
        self.inflow = inflow_mb_per_s  # expected from arrivals and reads (`expected_inflow`)
        self.accrued_at = 0.0
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
        if process.action != self._redate:  # a round due now counts from now anyway
            self.accrue(now)
        process.action()
        process.next_time = now + process.every
        self.next_time = min(p.next_time for p in self.processes)
        return now

    def _new_day(self) -> None:
        self.store.today += 1
        since = self.store.today - self.recent_days
        while self.first < len(self.recent) and self.recent[self.first][1] < since:
            self.first += 1

    def entered_store(self, megabytes: float, now: float) -> None:
        """The migration recalled `megabytes` into the local store at `now`: a re-date round
        starts at once when enough entered since the last one that recent studies near the
        store's end (as the runner counts: its recalls, and the expected inflow)."""
        self.entered += megabytes
        self.accrue(now)

    def accrue(self, now: float) -> None:
        """Count the expected inflow up to `now`; start a round when past the threshold."""
        if self.redate and now > self.accrued_at:
            self.entered += self.inflow * (now - self.accrued_at)
        self.accrued_at = max(self.accrued_at, now)
        if self.entered >= self.threshold:
            self._redate()
            # as the runner's: every study is due every_hours after this round, not the last
            self._reschedule_redates(now)

    def _reschedule_redates(self, now: float) -> None:
        for process in self.processes:
            if process.action == self._redate:
                process.next_time = now + process.every
        self.next_time = min(p.next_time for p in self.processes)

    def _arrival(self) -> None:
        key = self.next_key
        self.next_key += 1
        self.store.arrive(key, self.workload.new_study_mb, self.store.today)
        self.recent.append((key, self.store.today))

    def _read(self) -> None:
        """A clinician opens a recent study, or (`prior_read_share` of reads) an older prior."""
        rng = self.rng
        if self.priors and rng.random() < self.prior_share:
            key = self.priors[rng.randrange(len(self.priors))]
        elif self.first < len(self.recent):
            key = self.recent[rng.randrange(self.first, len(self.recent))][0]
        else:
            return
        self.store.access(key)

    def _redate(self) -> None:
        """A round: every recent study that was local (the window slides with the date; new
        arrivals included, as the runner finds them by C-FIND: runner.execute.arrivals) is
        re-dated, by a retrieve through the devices (`on_redate`), else at once."""
        store = self.store
        skip = self.not_local
        keys = [key for key, _ in self.recent[self.first:] if key not in skip]
        if self.on_redate is None:
            keys = [key for key in keys if store.refresh(key)]
            self.redates += len(keys)
        else:
            self.redates += self.on_redate(keys)
        self.rounds += 1
        self.entered = 0.0
        if self.rounds == 1:  # the plan's volume: the headroom of the first round's studies
            recent_mb = sum(store.size_of(key) for key in keys if store.is_local(key))
            headroom = self.store.low_water_mb - recent_mb
            self.threshold = headroom * self.headroom_fraction \
                if self.headroom_fraction > 0 and headroom > 0 else math.inf
