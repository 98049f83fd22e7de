"""The scheduler: per-device dispatch of retrieves, in the caller's thread.

Each pass starts every retrieve that may start now: re-dates first, then the device's own
queue (or another device's, when its own is empty), as the throttle in force allows
(schedule, concurrency, the delay formula with live values), while the spool has room for
what is in flight and what the next study brings (back-pressure). It also aborts stalled
retrieves, has devices marked down probed, and records throttle changes and dead time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from runner.dicom.spool import Spool
from runner.execute.devices import DeviceState
from runner.execute.inflight import InFlight
from runner.execute.redate import Arrivals, DeadTime, RecentWindow, Redates
from runner.execute.retrieving import Retriever
from runner.execute.sending.janitor import Janitor
from runner.execute.state import RunState
from runner.execute.work import Stage
from runner.ledger import EventKind, Ledger, RetrievePurpose
from runner.ledger.queries import last_redates
from runner.plan.model import Plan
from runner.plan.throttle import CompiledThrottle, next_start, throttle_in_force
from runner.profile.tiers import Location

_IDLE_WAKE = 0.5  # seconds between looks at the schedule when nothing else happens

# The schedule's clock: the local time in a zone (tests speed it up).
WallClock = Callable[[ZoneInfo], datetime]


class Scheduler:
    """Dispatches retrieves until every study is settled (or a stop is asked)."""

    def __init__(self, plan: Plan, state: RunState, ledger: Ledger, inflight: InFlight,
                 retriever: Retriever, spool: Spool, janitor: Janitor, stall_timeout: float,
                 wall_clock: WallClock = datetime.now) -> None:
        self.state = state
        self.ledger = ledger
        self.inflight = inflight
        self.retriever = retriever
        self.devices = retriever.devices  # the retriever's: it marks them down, brings them up
        self.redates = retriever.redates  # the retriever's: it counts the rounds' ends
        self.spool = spool
        self.janitor = janitor
        self.stall_timeout = stall_timeout
        self.schedule = plan.schedule
        self.throttles = {t.name: CompiledThrottle.of(t) for t in plan.throttles}
        recent = set(plan.redate.study_uids)
        self.plan_studies = {s.study_uid: s for p in plan.phases for s in p.studies
                             if s.study_uid in recent}
        self.zone = ZoneInfo(plan.timezone)
        self.wall_clock = wall_clock  # the schedule's clock: the site's local time
        self.dead = DeadTime()

    def dispatch_until_done(self, tick: Callable[[], None] = lambda: None,
                            interrupted: threading.Event | None = None) -> None:
        """Start retrieves as throttles allow until every study is settled (or stop, or
        `interrupted` is set: looked at after each wait, at most _IDLE_WAKE apart)."""
        state = self.state
        with state.lock:
            while not state.finished() and not (interrupted and interrupted.is_set()):
                wait = self._dispatch_once(time.monotonic())
                state.wake.wait(timeout=min(wait, _IDLE_WAKE))
                tick()
            if self.dead.update(False, time.monotonic()) == "end":
                self.ledger.record_event(EventKind.DEAD_TIME_END,
                                         detail={"seconds": round(self.dead.last_span, 3)})

    def abandon(self, timeout: float) -> None:
        """Abort the retrieves still in flight and wait for their ends."""
        self.retriever.abandon(timeout)

    def _dispatch_once(self, now: float) -> float:
        """Start every retrieve that may start now; seconds until the next may."""
        self._watch_stalls(now)
        self._probe_down_devices(now)
        self.redates.refill(now, self.inflight.by_study)
        next_release = self.state.queues.release(now)
        wait = (next_release - now) if next_release is not None else _IDLE_WAKE
        next_round = self.redates.next_round
        if next_round > now:  # wake for the next re-date round on time, not up to a pass late
            wait = min(wait, next_round - now)
        if not self.spool.is_full:
            wall = self.wall_clock(self.zone)
            usable = {d for d, s in self.devices.items() if s.usable()}
            for device_id in sorted(usable):
                wait = min(wait, self._fill_device(self.devices[device_id], usable, now, wall))
        self._note_dead_time(now)
        return max(wait, 0.01)

    def _fill_device(self, device: DeviceState, usable: set[str], now: float,
                     wall: datetime) -> float:
        name = throttle_in_force(self.schedule, device.pinned, wall)
        self._note_throttle(device, name)
        throttle = self.throttles.get(name) if name else None
        queues = self.state.queues
        while True:
            redate = self.redates.peek()
            uid = redate or queues.peek(device.id, usable)
            if uid is None:
                return _IDLE_WAKE
            megabytes, instances = self._size_of(uid)
            gate = next_start(throttle, device.in_flight, device.last_start, now,
                              self._formula_values(megabytes, instances, device, now))
            if gate.wait != 0.0:
                return gate.wait if gate.wait is not None else _IDLE_WAKE
            if redate is not None:
                self.redates.pop()
                self.retriever.start(redate, device, RetrievePurpose.REDATE, now)
                continue
            expected = self._expected_bytes(uid)
            if not self._spool_has_room(expected):
                return _IDLE_WAKE  # back-pressure: the spool would overflow; a store frees it
            queues.pop(uid)
            if self.state.works[uid].stage is not Stage.QUEUED:
                continue  # queued twice (never expected): it is under way or settled
            self.retriever.start(uid, device, RetrievePurpose.MIGRATE, now, expected)

    def _expected_bytes(self, uid: str) -> int:
        """The spool bytes a retrieve of `uid` will bring: its instance count times the mean
        instance received so far, else the plan's estimate."""
        work = self.state.works[uid]
        counters = self.state.counters
        left = max(0, (work.expected or 0) - len(work.received))
        if counters.received and work.expected:
            return left * counters.received_bytes // counters.received
        return int(work.megabytes * 1e6)

    def _spool_has_room(self, expected: int) -> bool:
        """Whether the spool holds what it holds now, what the retrieves in flight will
        bring, and `expected` more. With nothing in flight, a spool that is empty or holds
        only what was set aside has room: a study larger than the whole spool must still
        start (its stores are then refused, and cost no attempt: see retrieving)."""
        used = self.spool.used_bytes
        reserved = self.inflight.reserved_bytes()
        counters = self.state.counters
        draining = counters.received > counters.forwarded + counters.set_aside \
            or self.janitor.pending
        if reserved == 0 and (used == 0 or not draining):
            return True  # nothing in flight, nothing to forward: what is left is set aside
        return used + reserved + expected <= self.spool.max_bytes

    def _size_of(self, uid: str) -> tuple[float, int]:
        work = self.state.works.get(uid)
        if work is not None:
            return work.megabytes, work.expected or 0
        study = self.plan_studies.get(uid)
        return (study.estimated_mb, study.instances or 0) if study else (0.0, 0)

    def _formula_values(self, megabytes: float, instances: int, device: DeviceState,
                        now: float) -> dict[str, float]:
        return {"study_mb": megabytes, "study_instances": float(instances),
                "spool_gb": self.spool.used_bytes / 1e9,
                "device_mb_per_s": device.meter.mb_per_s(now)}

    def _note_throttle(self, device: DeviceState, name: str | None) -> None:
        if name != device.throttle:
            self.ledger.record_event(EventKind.THROTTLE_CHANGE, device=device.id,
                                     detail={"from": device.throttle, "to": name or "paused"})
            device.throttle = name

    def _note_dead_time(self, now: float) -> None:
        """Dead time: studies wait for a retrieve and none is in flight on any device."""
        dead = bool(len(self.state.queues)) and not len(self.inflight)
        change = self.dead.update(dead, now)
        if change == "start":
            self.ledger.record_event(EventKind.DEAD_TIME_START)
        elif change == "end":
            self.ledger.record_event(EventKind.DEAD_TIME_END,
                                     detail={"seconds": round(self.dead.last_span, 3)})

    def _watch_stalls(self, now: float) -> None:
        for retrieve in self.inflight:
            idle = retrieve.stalled(now, self.stall_timeout)
            if idle is not None and not retrieve.handle.aborted:
                self.ledger.record_event(EventKind.STALL, device=retrieve.device,
                                         study_uid=retrieve.study_uid,
                                         detail={"idle_seconds": round(idle, 1)})
                retrieve.handle.abort()

    def _probe_down_devices(self, now: float) -> None:
        for device in self.devices.values():
            if device.probe_due(now):
                self.retriever.probe(device)


def redates_due(plan: Plan, ledger: Ledger, wall_clock: WallClock = datetime.now,
                arrivals: Arrivals = tuple, on_round: Callable[[], None] = lambda: None,
                inflow_mb_per_s: float = 0.0, volume_mb: float | None = None) -> Redates:
    """The re-date rounds, each study due `every_hours` after its last re-date in the ledger;
    the recent studies worked out again each round from the plan's census and the local
    studies that reached the source since (`arrivals`), on the schedule's clock (the window
    slides with the date); `on_round` is told when a round begins; `inflow_mb_per_s` is
    what the hospital is expected to bring into the local store besides the migration
    (runner.tiering.clinical.expected_inflow), counted towards `volume_mb` (the MB after
    which a round starts early: the plan's, or worked out from a pilot's study sizes)."""
    now = datetime.now(UTC)
    ages = {uid: (now - ended).total_seconds()
            for uid, ended in last_redates(ledger).items()}
    zone = ZoneInfo(plan.timezone)
    census = [(s.study_date, s.study_uid) for p in plan.phases for s in p.studies
              if s.study_date is not None and s.location is Location.LOCAL]
    window = RecentWindow(census, plan.redate.recent_days, lambda: wall_clock(zone).date(),
                          arrivals) if plan.redate.recent_days else None
    return Redates(plan.redate.study_uids, plan.redate.every_hours * 3600.0, ages,
                   time.monotonic(), volume_mb, window, on_round,
                   inflow_mb_per_s)

