"""Compiling a profile and an inventory into a Plan: pure, no sockets, nothing written."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta

from runner.inventory.model import Inventory, Study, planned_mb
from runner.morph import RuleSet
from runner.plan.model import (
    DevicePlan,
    Excluded,
    ExclusionReason,
    Phase,
    Plan,
    RedatePlan,
    Slot,
    ThrottleSetting,
)
from runner.profile.models import SiteProfile
from runner.profile.tiers import Location


def plan_order(study: Study) -> tuple[bool, date, str]:
    """Oldest first, undated studies after the dated ones; the UID breaks ties so that the
    order never depends on the inventory's order."""
    return study.study_date is None, study.sort_date, study.study_uid


def compile_plan(profile: SiteProfile, inventory: Inventory, today: date,
                 exclusions: Mapping[str, str] | None = None, *, rules: RuleSet) -> Plan:
    """The plan for `profile` over `inventory`, as of `today` (in the site's time zone),
    with the profile's `rules` as the command compiled them (runner.morph.loaded).

    Every study of the inventory is planned or excluded with its reason: the profile's
    window and modality filter, `undated: exclude`, and `exclusions` (Study Instance UID to
    the reason given in the exclusion list).
    """
    studies, excluded = _in_scope(profile, inventory.studies, today, exclusions or {})
    device_ids = [d.id for d in profile.source.devices]
    balance = profile.source.balance_devices
    if profile.tiering.by_tier:
        phases = tuple(p for p in _phases(profile.tiering.phases, studies, device_ids, balance)
                       if p.tier in profile.tiering.order or p.studies)
    else:
        phases = _phases((None,), studies, device_ids, balance)
    return Plan(
        site_id=profile.site.id,
        site_name=profile.site.name,
        today=today,
        timezone=profile.site.timezone,
        phases=phases,
        devices=_device_plans(profile, phases),
        throttles=_throttles(profile),
        schedule=schedule_slots(profile),
        redate=_redate(profile, studies, today),
        rules=rules,
        destination=_destination(profile),
        verify=profile.destination.verify,
        inventory_origin=inventory.origin,
        notes=(*inventory.notes, *_exclusion_notes(excluded)),
        census=inventory.census,
        excluded=tuple(sorted(excluded, key=lambda e: plan_order(e.study))),
    )


def _in_scope(profile: SiteProfile, studies: Sequence[Study], today: date,
              exclusions: Mapping[str, str]) -> tuple[list[Study], list[Excluded]]:
    """The studies the profile admits, and the others with the reason for each."""
    query = profile.source.inventory
    start, end = query.from_, query.end_date(today)
    wanted = frozenset(query.modalities)
    kept: list[Study] = []
    excluded: list[Excluded] = []
    for study in studies:
        why = _exclusion(study, start, end, wanted, query.undated, exclusions)
        if why is None:
            kept.append(study)
        else:
            excluded.append(Excluded(study, *why))
    return kept, excluded


def _exclusion(study: Study, start: date, end: date, wanted: frozenset[str], undated: str,
               exclusions: Mapping[str, str]) -> tuple[ExclusionReason, str] | None:
    """Why `study` is not planned, or None when it is."""
    if study.study_uid in exclusions:
        return ExclusionReason.LISTED, exclusions[study.study_uid] or "on the exclusion list"
    day = study.study_date
    if day is None:
        if undated == "exclude":
            shown = f" ({study.raw_date!r})" if study.raw_date else ""
            return ExclusionReason.UNDATED, f"no usable Study Date{shown}; profile: undated: " \
                                            "exclude"
    elif day < start:
        return ExclusionReason.OUTSIDE_WINDOW, f"dated {day}, before the inventory's 'from' " \
                                               f"({start})"
    elif day > end:
        return ExclusionReason.OUTSIDE_WINDOW, f"dated {day}, after the inventory's 'to' ({end})"
    if wanted and study.modality and not _modalities(study) & wanted:
        return ExclusionReason.MODALITY, f"modality {study.modality} is not among the " \
                                         f"profile's modalities ({', '.join(sorted(wanted))})"
    return None


def _exclusion_notes(excluded: Sequence[Excluded]) -> list[str]:
    counts = Counter(e.reason for e in excluded)
    return [f"{n:,} studies of the census excluded: {reason.value}"
            for reason, n in sorted(counts.items())]


def _modalities(study: Study) -> frozenset[str]:
    return frozenset(m for m in study.modality.replace("/", "\\").split("\\") if m)


def _phases(tiers: Sequence[Location | None], studies: Iterable[Study],
            device_ids: Sequence[str], balance: bool) -> tuple[Phase, ...]:
    """One phase per tier in order; a single tier None takes every study. `balance`:
    every study goes to the least loaded device, not the one whose census found it."""
    by_tier: dict[Location | None, list[Study]] = {tier: [] for tier in tiers}
    for study in studies:
        by_tier[study.location if tiers != (None,) else None].append(study)
    balancer = _Balancer(device_ids, keep_found=not balance)
    phases = []
    for tier in tiers:
        ordered = sorted(by_tier[tier], key=plan_order)
        phases.append(Phase.of(tier, tuple(ordered), tuple(balancer.assign(s) for s in ordered)))
    return tuple(phases)


class _Balancer:
    """Assigns studies without a device (every study, unless `keep_found`) to the device
    with the least planned megabytes."""

    def __init__(self, device_ids: Sequence[str], keep_found: bool = True) -> None:
        self.known = frozenset(device_ids) if keep_found else frozenset()
        self.load = dict.fromkeys(device_ids, 0.0)
        self.heap = [(0.0, i, d) for i, d in enumerate(device_ids)]

    def assign(self, study: Study) -> str:
        if study.device is not None and study.device in self.known:
            device = study.device
            self.load[device] += study.estimated_mb
            return device
        while True:
            load, index, device = heapq.heappop(self.heap)
            if load == self.load[device]:
                break
            heapq.heappush(self.heap, (self.load[device], index, device))
        self.load[device] = load + study.estimated_mb
        heapq.heappush(self.heap, (self.load[device], index, device))
        return device


def _device_plans(profile: SiteProfile, phases: Sequence[Phase]) -> tuple[DevicePlan, ...]:
    counts: dict[str, int] = {}
    sizes: dict[str, float] = {}
    for phase in phases:
        for study, device in zip(phase.studies, phase.devices, strict=True):
            counts[device] = counts.get(device, 0) + 1
            sizes[device] = sizes.get(device, 0.0) + study.estimated_mb
    return tuple(DevicePlan(d.id, d.ae_title, d.host, d.port, d.throttle, counts.get(d.id, 0),
                            round(sizes.get(d.id, 0.0), 3), d.limits.mb_per_s,
                            d.limits.lockup_backlog_mb, d.limits.lockup_minutes)
                 for d in profile.source.devices)


def _throttles(profile: SiteProfile) -> tuple[ThrottleSetting, ...]:
    return tuple(ThrottleSetting(name, t.max_concurrent_retrieves, t.min_concurrent_retrieves,
                                 str(t.delay_seconds))
                 for name, t in profile.throttles.items())


def schedule_slots(profile: SiteProfile) -> tuple[Slot, ...]:
    """The profile's schedule as slots (no schedule: the first throttle at all times)."""
    if not profile.schedule:
        return (Slot(None, None, next(iter(profile.throttles))),)
    return tuple(Slot(tuple(e.days) if e.days else None, e.minutes, e.throttle)
                 for e in profile.schedule)


def _redate(profile: SiteProfile, studies: Sequence[Study], today: date) -> RedatePlan:
    days = profile.redate.recent_days
    if days == 0:
        return RedatePlan(0, profile.redate.every_hours, None, (), 0.0)
    since = today - timedelta(days=days)
    recent = sorted((s for s in studies if s.study_date is not None and s.study_date >= since
                     and s.location is Location.LOCAL), key=plan_order)
    recent_mb = round(sum(s.estimated_mb for s in recent), 3)
    return RedatePlan(days, profile.redate.every_hours, since,
                      tuple(s.study_uid for s in recent), recent_mb,
                      redate_volume(profile, studies, recent_mb))


def redate_volume(profile: SiteProfile, studies: Iterable[Study], recent_mb: float,
                  size: Callable[[Study], float] = planned_mb) -> float | None:
    """The MB recalled into the local store after which a re-date round starts early: the
    headroom_fraction of the store's low-water mark less the recent studies' `recent_mb`
    (the store is tiering.local_store_gb, else exactly what the local studies fill); each
    study of the MB `size` gives (default: as planned; the runner passes a pilot's)."""
    fraction = profile.redate.headroom_fraction
    if fraction <= 0:
        return None
    local_mb = sum(size(s) for s in studies if s.location is Location.LOCAL)
    capacity = max(profile.tiering.local_store_gb * 1000, local_mb)
    low_water = profile.tiering.low_water_fraction or 0.9
    headroom = capacity * low_water - recent_mb
    return round(headroom * fraction, 3) if headroom > 0 else None


def _destination(profile: SiteProfile) -> str:
    """The destination as the plan names it: AE@host:port, or its DICOMweb URL."""
    dest = profile.destination
    where = dest.dicomweb.url if dest.dicomweb else f"{dest.ae_title}@{dest.host}:{dest.port}"
    return f"{dest.name} ({where})"
