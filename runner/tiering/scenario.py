"""What every strategy of one forecast shares: studies, devices, throttles, store, schedule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from runner.execute.throttle import CompiledThrottle
from runner.inventory.model import Location, Study
from runner.plan.model import Plan
from runner.profile.formula import parse_formula
from runner.tiering.clinical import Workload
from runner.tiering.model import LocalStore
from runner.tiering.params import TierParameters
from runner.tiering.timeline import Timeline

NO_DELAY = parse_formula(0)


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

    @property
    def capacity_gb(self) -> float:
        """The local store's capacity the forecast runs with."""
        return self.store.capacity_mb / 1000

    def throttles_without_delay(self) -> dict[str, CompiledThrottle]:
        """The same throttles with the delay formula replaced by no delay at all."""
        return {name: CompiledThrottle(t.name, t.max_concurrent, t.min_concurrent, NO_DELAY)
                for name, t in self.throttles.items()}


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


def build_scenario(plan: Plan, start: datetime, params: TierParameters) -> Scenario:
    """The scenario of `plan` under `profile`, starting at `start` (see `start_of`)."""
    studies = tuple(s for phase in plan.phases for s in phase.studies)
    device_ids = tuple(d.id for d in plan.devices)
    position = {d: i for i, d in enumerate(device_ids)}
    device_of = tuple(position[d] for phase in plan.phases for d in phase.devices)
    by_date = _by_date(studies)
    today = start.date()
    return Scenario(
        studies=studies, sizes=tuple(s.estimated_mb for s in studies),
        instances=tuple(float(s.instances or 0) for s in studies),
        device_of=device_of, device_ids=device_ids,
        pinned=tuple(d.pinned_throttle for d in plan.devices),
        throttles={t.name: CompiledThrottle.of(t) for t in plan.throttles},
        timeline=Timeline(plan.schedule, start),
        store=_initial_store(studies, by_date, params, today),
        workload=Workload.of(params, studies, today),
        params=params,
        recent=_recent(studies, by_date, today, params.recent_days),
        by_date=by_date,
        tiers=tuple(s.location for s in studies),
    )


def _by_date(studies: tuple[Study, ...]) -> tuple[int, ...]:
    """The study keys oldest first (the UID breaks ties, as in the plan)."""
    return tuple(sorted(range(len(studies)),
                        key=lambda i: (studies[i].study_date, studies[i].study_uid)))


def _initial_store(studies: tuple[Study, ...], by_date: tuple[int, ...],
                   params: TierParameters, today: date) -> LocalStore[int]:
    """The store full of the local studies, least recently accessed (oldest) first."""
    local = [i for i in by_date if studies[i].location is Location.LOCAL]
    held = sum(studies[i].estimated_mb for i in local)
    capacity = max(params.local_store_gb * 1000, held)
    store: LocalStore[int] = LocalStore(capacity, capacity * params.low_water_of_capacity,
                                        params.recent_days, today.toordinal())
    for i, study in enumerate(studies):
        store.know(i, study.estimated_mb, study.study_date.toordinal())
    for i in local:
        store.know(i, studies[i].estimated_mb, studies[i].study_date.toordinal(), local=True)
    return store


def _recent(studies: tuple[Study, ...], by_date: tuple[int, ...], today: date,
            days: int) -> tuple[tuple[int, int], ...]:
    """Keys and acquisition days of the clinically recent studies, in acquisition order."""
    since = today - timedelta(days=days)
    keys = [i for i in by_date if since <= studies[i].study_date <= today]
    return tuple((i, studies[i].study_date.toordinal()) for i in keys)
