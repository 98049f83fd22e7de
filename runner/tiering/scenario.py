"""What every strategy of one forecast shares: studies, devices, throttles, store, schedule."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import chain
from operator import attrgetter
from zoneinfo import ZoneInfo

from runner.inventory.model import Study, planned_mb
from runner.plan.model import DevicePlan, Plan
from runner.plan.throttle import CompiledThrottle
from runner.profile.formula import parse_formula
from runner.profile.tiers import Location
from runner.tiering.clinical import Workload, expected_inflow
from runner.tiering.model import LocalStore
from runner.tiering.params import TierParameters
from runner.tiering.timeline import Timeline

NO_DELAY = parse_formula(0)
_DATE = attrgetter("sort_date")  # an undated study counts as the oldest
_PLAN_ORDER = attrgetter("sort_date", "study_uid")


@dataclass(frozen=True, slots=True)
class Scenario:
    """The migration to simulate, strategy-independent; study keys are indices of `studies`.

    `store` is the local store at the start: each simulation runs on a copy of it.
    """

    studies: tuple[Study, ...]
    sizes: tuple[float, ...]
    instances: tuple[float, ...]
    device_of: tuple[int, ...]
    device_ids: tuple[str, ...]
    pinned: tuple[str | None, ...]
    throttles: Mapping[str, CompiledThrottle]
    timeline: Timeline
    store: LocalStore[int]
    workload: Workload
    params: TierParameters
    recent: tuple[tuple[int, int], ...]
    by_date: tuple[int, ...]
    tiers: tuple[Location, ...]
    limits: tuple[DeviceLimits, ...]  # per device, indexed as device_ids
    priors: tuple[int, ...] = ()  # the studies older than the recent window, oldest first
    inflow_mb_per_s: float = 0.0  # expected into the local store besides the migration

    @property
    def capacity_gb(self) -> float:
        """The local store's capacity the forecast runs with."""
        return self.store.capacity_mb / 1000

    def throttles_without_delay(self) -> dict[str, CompiledThrottle]:
        """The same throttles with the delay formula replaced by no delay at all."""
        return {name: CompiledThrottle(t.name, t.max_concurrent, t.min_concurrent, NO_DELAY)
                for name, t in self.throttles.items()}


@dataclass(frozen=True, slots=True)
class DeviceLimits:
    """What one device bears in the model: its total rate, the backlog that locks it up,
    and how long a lock-up lasts."""

    mb_per_s: float
    lockup_backlog_mb: float
    lockup_seconds: float

    @classmethod
    def of(cls, device: DevicePlan, params: TierParameters) -> DeviceLimits:
        """The device's own limits where the profile gives them, else the parameters'."""
        def own(value: float | None, default: float) -> float:
            return default if value is None else value
        return cls(own(device.mb_per_s, params.device_total_mb_per_s),
                   own(device.lockup_backlog_mb, params.lockup_backlog_mb),
                   own(device.lockup_minutes, params.lockup_minutes) * 60.0)


def start_of(plan: Plan, start: date | datetime | None) -> datetime:
    """The simulated start in the site's zone, on a whole minute (default: the plan's
    day at midnight; a naive datetime is site time)."""
    zone = ZoneInfo(plan.timezone)
    if start is None:
        start = plan.today
    if not isinstance(start, datetime):
        start = datetime.combine(start, time(0, 0))
    start = start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)
    return start.replace(second=0, microsecond=0)


def build_scenario(plan: Plan, start: datetime, params: TierParameters,
                   size: Callable[[Study], float] = planned_mb) -> Scenario:
    """The scenario of `plan` under `profile`, starting at `start` (see `start_of`), each
    study of the MB `size` gives (default: as planned; a pilot run measures them)."""
    studies = tuple(chain.from_iterable(p.studies for p in plan.phases))
    device_ids = tuple(d.id for d in plan.devices)
    position = {d: i for i, d in enumerate(device_ids)}
    sizes = tuple(map(size, studies))
    days = [d.toordinal() for d in map(_DATE, studies)]
    by_date = _by_date(studies)
    dated = [days[i] for i in by_date]
    today = start.date().toordinal()
    tiers = tuple(s.location for s in studies)
    recent = _window(by_date, dated, today - params.recent_days, today)
    history = _window(by_date, dated, today - params.history_days + 1, today)
    return Scenario(
        studies=studies, sizes=sizes,
        instances=tuple(float(s.instances or 0) for s in studies),
        device_of=tuple(position[d] for phase in plan.phases for d in phase.devices),
        device_ids=device_ids, pinned=tuple(d.pinned_throttle for d in plan.devices),
        throttles={t.name: CompiledThrottle.of(t) for t in plan.throttles},
        timeline=Timeline(plan.schedule, start),
        store=_initial_store(sizes, days, [i for i in by_date if tiers[i] is Location.LOCAL],
                             params, today),
        workload=Workload.of(params, [sizes[i] for i in history]),
        params=params, recent=tuple((i, days[i]) for i in recent), by_date=by_date,
        tiers=tiers, limits=tuple(DeviceLimits.of(d, params) for d in plan.devices),
        priors=by_date[:bisect_left(dated, today - params.recent_days)],
        inflow_mb_per_s=expected_inflow(params, studies, start.date(), size),
    )


def _by_date(studies: tuple[Study, ...]) -> tuple[int, ...]:
    """The study keys oldest first (the UID breaks ties, as in the plan)."""
    keys = list(map(_PLAN_ORDER, studies))
    return tuple(sorted(range(len(studies)), key=keys.__getitem__))


def _window(by_date: tuple[int, ...], dated: list[int], first: int,
            last: int) -> tuple[int, ...]:
    """The keys of the studies acquired from day `first` to day `last` (ordinals), in
    date order; `dated` is the days of `by_date`."""
    return by_date[bisect_left(dated, first):bisect_right(dated, last)]


def _initial_store(sizes: tuple[float, ...], days: list[int], local: list[int],
                   params: TierParameters, today: int) -> LocalStore[int]:
    """The store full of the local studies, least recently accessed (oldest) first."""
    held = sum(sizes[i] for i in local)
    capacity = max(params.local_store_gb * 1000, held)
    store: LocalStore[int] = LocalStore(capacity, capacity * params.low_water_fraction,
                                        params.recent_days, today)
    store.know_all(dict(enumerate(sizes)), dict(enumerate(days)), local)
    return store
