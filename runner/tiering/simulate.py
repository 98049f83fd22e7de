"""One strategy run through the tier model: a discrete-event simulation of the migration."""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass

from runner.plan.throttle import CompiledThrottle, next_start
from runner.profile.tiers import Location
from runner.tiering.clinical import DAY_SECONDS, Clinic
from runner.tiering.device import ModelDevice
from runner.tiering.scenario import Scenario
from runner.tiering.strategy import Strategy, ordered_keys
from runner.tiering.timeline import ScheduleCursor

_DONE, _WAKE, _SEGMENT, _RECALLED, _UNLOCK = 0, 1, 2, 3, 4
_EPSILON_MB = 1e-6
# lock-ups in a row with nothing finished, or re-date rounds queued behind the last with
# nothing migrated: the strategy never finishes
STUCK_AFTER = 20


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """What one strategy costs: time, total work (recalls), harm to clinical work."""

    name: str
    profile_choice: bool
    finished: bool
    hours: float
    recalled_gb: float
    recalls: int
    recent_studies_evicted: int
    evictions: int
    dead_time_hours: float
    redates: int
    studies: int
    lockups: int = 0
    locked_hours: float = 0.0  # device-hours spent locked up
    turnover_hours: float | None = None  # until the migration recalled a store's worth
    redate_rounds: int = 0


class Simulation:
    """Migrates every study of the scenario in the strategy's order, event by event.

    Retrieves start as the device's throttle allows (schedule, concurrency, delay formula,
    or the hourly break). A study not on the local store is first recalled at
    `nearline_mb_per_s`; then its data flows at `device_mb_per_s`, the device's retrieves
    sharing its total rate (`DeviceLimits.mb_per_s`). A retrieve asked of a device whose
    backlog (MB asked and not yet delivered) would pass `lockup_backlog_mb` locks it up with
    the overload's share as probability (seeded): what it had in flight is lost and asked
    again, first, when it is back after `lockup_seconds`; a device that locks up STUCK_AFTER
    times with nothing finished stops the forecast as unfinished. The clinic's activity runs
    alongside. With `record_starts`, `starts` lists every retrieve started as (simulated
    second, key).
    """

    def __init__(self, scenario: Scenario, strategy: Strategy,
                 record_starts: bool = False) -> None:
        params = scenario.params
        self.scenario = scenario
        self.strategy = strategy
        self.store = scenario.store.copy()
        self.redate_queue: deque[int] = deque()  # re-date jobs (~key), shared by the devices
        self.redate_next: list[int] = []  # a round that waits for the last one to be through
        local = Location.LOCAL
        self.clinic = Clinic(self.store, scenario.workload, params, list(scenario.recent),
                             len(scenario.studies), strategy.redate, scenario.priors,
                             frozenset(k for k, _ in scenario.recent
                                       if scenario.tiers[k] is not local),
                             self._queue_redates, scenario.inflow_mb_per_s)
        self.throttles: dict[str, CompiledThrottle] = (
            scenario.throttles_without_delay() if strategy.hourly_break
            else dict(scenario.throttles))
        self.uses_rate = any("device_mb_per_s" in t.delay.names for t in self.throttles.values())
        self.cursor = ScheduleCursor(scenario.timeline,
                                     params.break_minute if strategy.hourly_break else None)
        self.devices = self._devices()
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.sequence = 0
        self.now = 0.0
        self.remaining = len(scenario.studies)
        self.in_flight = 0
        self.dead_since: float | None = 0.0
        self.dead = 0.0
        self.finished_at = 0.0
        self.starts: list[tuple[float, int]] | None = [] if record_starts else None
        self.stuck = False
        self.crowded = 0  # rounds in a row queued behind the last with nothing migrated
        self.remaining_at_round = self.remaining
        self.recalled_mb = 0.0  # by the migration's own retrieves
        self.turnover: float | None = None
        self.rng = random.Random(params.seed)  # which overloads lock a device up

    def _devices(self) -> list[ModelDevice]:
        sc = self.scenario
        queues: list[list[int]] = [[] for _ in sc.device_ids]
        for key in ordered_keys(sc.by_date, sc.tiers, self.strategy):
            queues[sc.device_of[key]].append(key)
        return [ModelDevice(i, sc.pinned[i], q, sc.limits[i], sc.params.device_mb_per_s)
                for i, q in enumerate(queues)]

    def run(self) -> StrategyResult:
        """Simulate to the end (or to the horizon) and sum up."""
        horizon = self.scenario.params.horizon_days * DAY_SECONDS
        self._fill_all()
        while self.remaining and self.heap and not self.stuck:
            if self.clinic.next_time <= self.heap[0][0]:
                self.now = max(self.now, self.clinic.fire())
                if self.redate_queue:
                    self._fill_all()
                continue
            when, _, kind, arg, stamp = heapq.heappop(self.heap)
            if when > horizon:
                break
            self.now = when
            self._handle(kind, arg, stamp)
        return self._result()

    def _handle(self, kind: int, arg: int, stamp: int) -> None:
        if kind == _DONE:
            device = self.devices[arg]
            if stamp == device.version:
                self._done(device)
        elif kind == _RECALLED:
            device = self.devices[stamp % len(self.devices)]  # stamped with epoch and device
            if stamp // len(self.devices) == device.epoch:
                size = device.recalling.pop(arg)
                self._transfer(device, arg, size)
        elif kind == _WAKE:
            device = self.devices[arg]
            if device.wake_at == self.now:
                device.wake_at = -1.0
            self._fill(device)
        elif kind == _UNLOCK:
            self._fill(self.devices[arg])
        else:
            self._fill_all()

    def _push(self, when: float, kind: int, arg: int, stamp: int = 0) -> None:
        self.sequence += 1
        heapq.heappush(self.heap, (when, self.sequence, kind, arg, stamp))

    def _fill_all(self) -> None:
        for device in self.devices:
            self._fill(device)

    def _fill(self, device: ModelDevice) -> None:
        """Start every retrieve the device may start now; wake it when the next may."""
        now = self.now
        if now < device.locked_until or not (self.redate_queue or self.remaining):
            return
        throttle = self._throttle(device, now)
        size_of, instances = self.store.size_of, self.scenario.instances
        known = len(instances)
        while (picked := self._next_job(device)) is not None:
            job, owner = picked
            key = job if job >= 0 else ~job
            values = {"study_mb": size_of(key), "spool_gb": 0.0,
                      "study_instances": instances[key] if key < known else 0.0}
            if self.uses_rate:
                values["device_mb_per_s"] = device.meter.mb_per_s(now)
            wait = next_start(throttle, device.in_flight, device.last_start, now, values).wait
            if wait != 0.0:
                if wait is not None:
                    self._wake(device, now + wait)
                return
            if not self._start(device, job, owner):
                return

    def _next_job(self, device: ModelDevice) -> tuple[int, ModelDevice] | None:
        """A re-date first; else the device's own next study; else, as the runner's queues
        do, the next study of the device with the most waiting (a locked one first)."""
        if self.redate_queue:
            return self.redate_queue[0], device
        if device.has_work:
            return device.next_key(), device
        now = self.now
        donors = [d for d in self.devices if d.has_work]
        if not donors:
            return None
        donor = max(donors, key=lambda d: (now < d.locked_until, d.waiting()))
        return donor.next_key(), donor

    def _throttle(self, device: ModelDevice, now: float) -> CompiledThrottle | None:
        """The device's throttle now (None: paused by the schedule or the hourly break)."""
        cursor = self.cursor
        if now >= cursor.end and cursor.at(now) and cursor.end < math.inf:
            self._push(cursor.end, _SEGMENT, -1)
        if cursor.on_break:
            return None
        name = device.pinned or cursor.name
        return self.throttles[name] if name is not None else None

    def _wake(self, device: ModelDevice, when: float) -> None:
        if when >= self.cursor.end or self.now < device.wake_at <= when:
            return
        device.wake_at = when
        self._push(when, _WAKE, device.index)

    def _queue_redates(self, keys: list[int]) -> int:
        """A re-date round's studies, for the devices to retrieve before their own queue
        (as the runner does); a round waits while the last one is still queued. Returns
        how many were queued now."""
        busy = {job for device in self.devices for job in device.flight}
        jobs = [~key for key in keys if ~key not in busy]
        if self.redate_queue:
            self.redate_next = jobs
            # the last round is not through and nothing migrated since: re-dating alone
            # keeps the devices busy (recent studies arriving faster than they are re-dated)
            crowded = self.remaining == self.remaining_at_round
            self.crowded = self.crowded + 1 if crowded else 0
            self.stuck = self.stuck or self.crowded >= STUCK_AFTER
            self.remaining_at_round = self.remaining
            return 0
        self.crowded = 0
        self.remaining_at_round = self.remaining
        self.redate_queue.extend(jobs)
        return len(jobs)

    def _take(self, owner: ModelDevice, job: int) -> None:
        """The job starts: off the re-date queue (the waiting round follows) or its owner's."""
        if job >= 0:
            owner.take()
            return
        self.redate_queue.popleft()
        if not self.redate_queue and self.redate_next:
            self.redate_queue.extend(self.redate_next)
            self.clinic.redates += len(self.redate_next)
            self.redate_next = []

    def _start(self, device: ModelDevice, job: int, owner: ModelDevice) -> bool:
        """Ask the device for a study (`job`: its key, ~key for a re-date): False when the
        request locks the device up. A re-date is a retrieve like any other: it recalls its
        study when the study was pushed off meanwhile."""
        key = job if job >= 0 else ~job
        size = self.store.size_of(key)
        device.advance(self.now)
        over = (device.backlog() + size) / device.limits.lockup_backlog_mb - 1.0
        if over > 0 and device.in_flight and self.rng.random() < over:
            self._lock_up(device)
            return False
        self._take(owner, job)
        recalled = self.store.access(key)
        device.flight[job] = None
        device.in_flight += 1
        device.last_start = self.now
        if self.dead_since is not None:
            self.dead += self.now - self.dead_since
            self.dead_since = None
        self.in_flight += 1
        if self.starts is not None and job >= 0:
            self.starts.append((self.now, key))
        params = self.scenario.params
        latency = params.retrieve_latency_seconds
        if job < 0 and params.redate_latency_seconds is not None:
            latency = params.redate_latency_seconds
        if recalled > 0:
            self.recalled_mb += recalled
            if self.turnover is None and self.recalled_mb >= self.store.capacity_mb:
                self.turnover = self.now
            if self.strategy.redate:
                self.clinic.entered_store(recalled, self.now)
            latency += recalled / self.scenario.params.nearline_mb_per_s
        if latency > 0:  # held by the device (and its recall) before data flows
            device.recalling[job] = size
            self._push(self.now + latency, _RECALLED, job,
                       device.epoch * len(self.devices) + device.index)
        else:
            self._transfer(device, job, size)
        return True

    def _transfer(self, device: ModelDevice, key: int, size: float) -> None:
        """The study's data starts to flow from the device, sharing its rate."""
        device.advance(self.now)
        device.active[key] = device.served + size
        self._schedule_done(device)

    def _schedule_done(self, device: ModelDevice) -> None:
        device.version += 1
        if device.active:
            left = min(device.active.values()) - device.served
            self._push(self.now + max(left, 0.0) / device.rate(), _DONE, device.index,
                       device.version)

    def _done(self, device: ModelDevice) -> None:
        """The device's first transfer ends (and any ending at the same moment)."""
        device.advance(self.now)
        ended = [k for k, end in device.active.items() if end - device.served <= _EPSILON_MB]
        for key in ended:
            del device.active[key]
            self._finish(device, key)
        self._schedule_done(device)
        self._fill(device)

    def _finish(self, device: ModelDevice, job: int) -> None:
        del device.flight[job]
        device.in_flight -= 1
        if self.uses_rate:
            device.meter.add(self.now, self.store.size_of(job if job >= 0 else ~job))
        self.in_flight -= 1
        if job >= 0:
            device.fruitless = 0
            self.remaining -= 1
            self.finished_at = self.now
        if self.in_flight == 0 and self.remaining:
            self.dead_since = self.now

    def _lock_up(self, device: ModelDevice) -> None:
        """Pushed past its backlog: the device stops for its lock-up time, and what was in
        flight on it is lost, to be asked again (in the same order) when it is back."""
        lost = list(device.flight)
        device.retry = [job for job in lost if job >= 0] + device.retry  # re-dates: failed
        device.in_flight -= len(lost)
        self.in_flight -= len(lost)
        if self.in_flight == 0 and self.dead_since is None:
            self.dead_since = self.now
        device.active.clear()
        device.recalling.clear()
        device.flight.clear()
        device.epoch += 1
        device.version += 1
        device.lockups += 1
        device.fruitless += 1
        if device.fruitless >= STUCK_AFTER:
            self.stuck = True  # it will lock up again each time it is back
            return
        device.locked_until = self.now + device.limits.lockup_seconds
        device.locked_seconds += device.limits.lockup_seconds
        self._push(device.locked_until, _UNLOCK, device.index)
        self._push(self.now, _SEGMENT, -1)  # the other devices may take its studies

    def _result(self) -> StrategyResult:
        counts = self.store.counts()
        if self.dead_since is not None and self.remaining:
            self.dead += self.now - self.dead_since
        total = len(self.scenario.studies)
        return StrategyResult(
            name=self.strategy.name, profile_choice=False, finished=self.remaining == 0,
            hours=(self.finished_at if not self.remaining else self.now) / 3600.0,
            recalled_gb=counts.recalled_mb / 1000, recalls=counts.recalls,
            recent_studies_evicted=counts.recent_evictions, evictions=counts.evictions,
            dead_time_hours=self.dead / 3600.0, redates=self.clinic.redates,
            studies=total - self.remaining, lockups=sum(d.lockups for d in self.devices),
            locked_hours=sum(d.locked_seconds for d in self.devices) / 3600.0,
            turnover_hours=None if self.turnover is None else self.turnover / 3600.0,
            redate_rounds=self.clinic.rounds)
