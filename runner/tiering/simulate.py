"""One strategy run through the tier model: a discrete-event simulation of the migration."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from runner.plan.throttle import CompiledThrottle, ThroughputMeter, next_start
from runner.tiering.clinical import DAY_SECONDS, Clinic
from runner.tiering.scenario import Scenario
from runner.tiering.strategy import Strategy, ordered_keys
from runner.tiering.timeline import ScheduleCursor

_FINISH, _WAKE, _SEGMENT = 0, 1, 2


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


class _Device:
    """One source device during the simulation: its queue and what is in flight."""

    __slots__ = ("in_flight", "index", "last_start", "meter", "pinned", "position", "queue",
                 "wake_at")

    def __init__(self, index: int, pinned: str | None, queue: list[int]) -> None:
        self.index = index
        self.pinned = pinned
        self.queue = queue
        self.position = 0
        self.in_flight = 0
        self.last_start: float | None = None
        self.wake_at = -1.0
        self.meter = ThroughputMeter()


class Simulation:
    """Migrates every study of the scenario in the strategy's order, event by event.

    Retrieves start as the device's throttle allows (schedule, concurrency, delay formula,
    or the hourly break); each lasts its size at `device_mb_per_s` plus, for a study not on
    the local store, its recall at `nearline_mb_per_s`. The clinic's activity runs alongside.
    With `record_starts`, `starts` lists every retrieve started as (simulated second, key).
    """

    def __init__(self, scenario: Scenario, strategy: Strategy,
                 record_starts: bool = False) -> None:
        params = scenario.params
        self.scenario = scenario
        self.strategy = strategy
        self.store = scenario.store.copy()
        self.clinic = Clinic(self.store, scenario.workload, params, list(scenario.recent),
                             len(scenario.studies), strategy.redate)
        self.throttles: dict[str, CompiledThrottle] = (
            scenario.throttles_without_delay() if strategy.hourly_break
            else dict(scenario.throttles))
        self.uses_rate = any("device_mb_per_s" in t.delay.names for t in self.throttles.values())
        self.cursor = ScheduleCursor(scenario.timeline,
                                     params.break_minute if strategy.hourly_break else None)
        self.devices = self._devices()
        self.heap: list[tuple[float, int, int, int]] = []
        self.sequence = 0
        self.now = 0.0
        self.remaining = len(scenario.studies)
        self.in_flight = 0
        self.dead_since: float | None = 0.0
        self.dead = 0.0
        self.finished_at = 0.0
        self.starts: list[tuple[float, int]] | None = [] if record_starts else None

    def _devices(self) -> list[_Device]:
        sc = self.scenario
        queues: list[list[int]] = [[] for _ in sc.device_ids]
        for key in ordered_keys(sc.by_date, sc.tiers, self.strategy):
            queues[sc.device_of[key]].append(key)
        return [_Device(i, sc.pinned[i], q) for i, q in enumerate(queues)]

    def run(self) -> StrategyResult:
        """Simulate to the end (or to the horizon) and sum up."""
        horizon = self.scenario.params.horizon_days * DAY_SECONDS
        self._fill_all()
        while self.remaining and self.heap:
            if self.clinic.next_time <= self.heap[0][0]:
                self.clinic.fire()
                continue
            when, _, kind, arg = heapq.heappop(self.heap)
            if when > horizon:
                break
            self.now = when
            self._handle(kind, arg)
        return self._result()

    def _handle(self, kind: int, arg: int) -> None:
        if kind == _FINISH:
            self._finish(arg)
        elif kind == _WAKE:
            device = self.devices[arg]
            if device.wake_at == self.now:
                device.wake_at = -1.0
            self._fill(device)
        else:
            self._fill_all()

    def _push(self, when: float, kind: int, arg: int) -> None:
        self.sequence += 1
        heapq.heappush(self.heap, (when, self.sequence, kind, arg))

    def _fill_all(self) -> None:
        for device in self.devices:
            self._fill(device)

    def _fill(self, device: _Device) -> None:
        """Start every retrieve the device may start now; wake it when the next may."""
        queue, now = device.queue, self.now
        if device.position == len(queue):
            return
        throttle = self._throttle(device, now)
        sizes, instances = self.scenario.sizes, self.scenario.instances
        while True:
            key = queue[device.position]
            values = {"study_mb": sizes[key], "study_instances": instances[key], "spool_gb": 0.0}
            if self.uses_rate:
                values["device_mb_per_s"] = device.meter.mb_per_s(now)
            wait = next_start(throttle, device.in_flight, device.last_start, now, values).wait
            if wait != 0.0:
                if wait is not None:
                    self._wake(device, now + wait)
                return
            self._start(device, key)
            if device.position == len(queue):
                return

    def _throttle(self, device: _Device, now: float) -> CompiledThrottle | None:
        """The device's throttle now (None: paused by the schedule or the hourly break)."""
        cursor = self.cursor
        if now >= cursor.end and cursor.at(now) and cursor.end < math.inf:
            self._push(cursor.end, _SEGMENT, -1)
        if cursor.on_break:
            return None
        name = device.pinned or cursor.name
        return self.throttles[name] if name is not None else None

    def _wake(self, device: _Device, when: float) -> None:
        if when >= self.cursor.end or self.now < device.wake_at <= when:
            return
        device.wake_at = when
        self._push(when, _WAKE, device.index)

    def _start(self, device: _Device, key: int) -> None:
        params = self.scenario.params
        recalled = self.store.access(key)
        size = self.scenario.sizes[key]
        duration = size / params.device_mb_per_s + recalled / params.nearline_mb_per_s
        device.position += 1
        device.in_flight += 1
        device.last_start = self.now
        if self.dead_since is not None:
            self.dead += self.now - self.dead_since
            self.dead_since = None
        self.in_flight += 1
        self._push(self.now + duration, _FINISH, key)
        if self.starts is not None:
            self.starts.append((self.now, key))

    def _finish(self, key: int) -> None:
        device = self.devices[self.scenario.device_of[key]]
        device.in_flight -= 1
        if self.uses_rate:
            device.meter.add(self.now, self.scenario.sizes[key])
        self.in_flight -= 1
        self.remaining -= 1
        self.finished_at = self.now
        if self.in_flight == 0 and self.remaining:
            self.dead_since = self.now
        self._fill(device)

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
            studies=total - self.remaining)
