"""Explaining a Plan: for a person (text tables) and for scripts (the plan JSON of the spec)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from runner.inventory.model import Study
from runner.plan.model import Phase, Plan, Slot

_DAY_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as the JSON document of the spec (`plan --json`), with extra detail keys."""
    return {
        "site": plan.site_id,
        "today": plan.today.isoformat(),
        "inventory": plan.inventory_origin,
        "phases": [_phase_json(p) for p in plan.phases],
        "devices": [{"id": d.id, "ae_title": d.ae_title, "host": d.host, "port": d.port,
                     "throttle": d.pinned_throttle, "studies": d.studies,
                     "gb": round(d.megabytes / 1000, 3)} for d in plan.devices],
        "throttles": [{"name": t.name, "max_concurrent_retrieves": t.max_concurrent,
                       "min_concurrent_retrieves": t.min_concurrent,
                       "delay_seconds": t.delay_seconds} for t in plan.throttles],
        "schedule": [{"days": list(s.days) if s.days else None,
                      "hours": _hours(s.minutes), "throttle": s.throttle} for s in plan.schedule],
        "redate": {"recent_days": plan.redate.recent_days, "every_hours": plan.redate.every_hours,
                   "volume_mb": plan.redate.volume_mb,
                   "since": plan.redate.since.isoformat() if plan.redate.since else None,
                   "studies": len(plan.redate.study_uids),
                   "gb": round(plan.redate.megabytes / 1000, 3),
                   "order": list(plan.redate.study_uids)},
        "morphing": list(plan.rules),
        "destination": {"name": plan.destination, "verify": plan.verify},
        "census": _census_json(plan),
        "excluded": [{"study_uid": e.study.study_uid, "reason": e.reason.value,
                      "detail": e.detail,
                      "study_date": e.study.study_date.isoformat() if e.study.study_date
                      else None, "modality": e.study.modality} for e in plan.excluded],
        "notes": list(plan.notes),
    }


def _census_json(plan: Plan) -> dict[str, Any]:
    census = plan.census
    reasons = Counter(e.reason.value for e in plan.excluded)
    return {"method": census.method, "of_source": census.of_source,
            "complete": census.complete, "queries": census.queries,
            "since": census.since.isoformat() if census.since else None,
            "cap": census.cap, "gaps": list(census.gaps),
            "studies": plan.source_studies,
            "instances": sum(s.instances or 0 for s in _all_studies(plan)),
            "unknown_count_studies": sum(1 for s in _all_studies(plan) if s.instances is None),
            "planned": plan.studies, "undated_planned": plan.undated,
            "excluded": len(plan.excluded), "excluded_by_reason": dict(sorted(reasons.items()))}


def _all_studies(plan: Plan) -> Iterator[Study]:
    for phase in plan.phases:
        yield from phase.studies
    for excluded in plan.excluded:
        yield excluded.study


def _phase_json(phase: Phase) -> dict[str, Any]:
    span = phase.date_span
    return {"tier": phase.name, "studies": len(phase.studies),
            "instances": phase.instances, "gb": round(phase.megabytes / 1000, 2),
            "undated": phase.undated,
            "from": span[0].isoformat() if span else None,
            "to": span[1].isoformat() if span else None,
            "order": [s.study_uid for s in phase.studies]}


def _hours(minutes: tuple[int, int] | None) -> str | None:
    if minutes is None:
        return None
    return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in minutes)


def explain(plan: Plan) -> list[str]:
    """The plan for a person: what will be moved, in which order, how hard and how."""
    lines = [f"Plan for {plan.site_name} ({plan.site_id}), as of {plan.today} ({plan.timezone})",
             f"Inventory: {plan.inventory_origin}; destination: {plan.destination}, "
             f"verified by {plan.verify}", ""]
    lines += census_lines(plan)
    lines += _section("Phases (each oldest first; undated studies after the dated ones)",
                      _phase_rows(plan))
    lines += _section("Source devices", _device_rows(plan))
    lines += _section("Throttles", [["throttle", "max in flight", "start at once up to",
                                     "delay before each further retrieve (s)"]] +
                      [[t.name, str(t.max_concurrent), str(t.min_concurrent), t.delay_seconds]
                       for t in plan.throttles])
    lines += _section("Schedule (first match wins)", _schedule_rows(plan.schedule))
    lines += _redate_lines(plan)
    lines += ["Morphing rules, in order:"]
    lines += [f"  {i}. {text}" for i, text in enumerate(plan.rules, 1)] or ["  (none)"]
    lines += ["", *[f"Note: {n}" for n in plan.notes]]
    lines.append("Dry run: no C-MOVE and no C-STORE was issued.")
    return lines


def census_lines(plan: Plan) -> list[str]:
    """What the source holds and what becomes of it: planned, or excluded by reason."""
    census = plan.census
    studies = list(_all_studies(plan))
    unknown = sum(1 for s in studies if s.instances is None)
    instances = f"{sum(s.instances or 0 for s in studies):,} instances" + (
        f" (+ {unknown:,} studies of unknown count)" if unknown else "")
    holder = "The source holds" if census.of_source else "The inventory CSV lists"
    scope = f", dated from {census.since}" if census.since else ""
    lines = [f"Census: {census.method}; {census.queries:,} queries",
             f"  {holder} {plan.source_studies:,} studies{scope} / {instances}"
             f" -> planned {plan.studies:,} ({plan.undated:,} without a usable date),"
             f" excluded {len(plan.excluded):,}"]
    for reason, n in sorted(Counter(e.reason.value for e in plan.excluded).items()):
        lines.append(f"  excluded: {n:,} {reason}")
    if not census.complete:
        lines.append(f"  INCOMPLETE: {len(census.gaps):,} queries could not be answered"
                     " fully; studies may be missing (see the notes)")
    return [*lines, ""]


def _phase_rows(plan: Plan) -> list[list[str]]:
    unit, per = size_unit(plan.megabytes)
    rows = [["#", "tier", "studies", "undated", "instances", unit, "first date", "last date"]]
    for i, phase in enumerate(plan.phases, 1):
        span = phase.date_span
        rows.append([str(i), phase.name, f"{len(phase.studies):,}", f"{phase.undated:,}",
                     f"{phase.instances:,}", f"{phase.megabytes / per:,.2f}",
                     str(span[0]) if span else "-", str(span[1]) if span else "-"])
    rows.append(["", "total", f"{plan.studies:,}", f"{plan.undated:,}",
                 f"{sum(p.instances for p in plan.phases):,}",
                 f"{plan.megabytes / per:,.2f}", "", ""])
    return rows


def _device_rows(plan: Plan) -> list[list[str]]:
    unit, per = size_unit(max((d.megabytes for d in plan.devices), default=0.0))
    rows = [["device", "AE title", "address", "throttle", "studies", unit]]
    for d in plan.devices:
        rows.append([d.id, d.ae_title, f"{d.host}:{d.port}",
                     d.pinned_throttle or "by schedule", f"{d.studies:,}",
                     f"{d.megabytes / per:,.2f}"])
    return rows


def _schedule_rows(slots: Sequence[Slot]) -> list[list[str]]:
    rows = [["days", "hours", "throttle"]]
    for slot in slots:
        rows.append([_days(slot.days), _hours(slot.minutes) or "all day", slot.throttle])
    if slots and (slots[-1].days or slots[-1].minutes):
        rows.append(["other times", "", "paused (no entry matches: no retrieves start)"])
    return rows


def _days(days: Sequence[str] | None) -> str:
    if not days:
        return "every day"
    return ", ".join(d for d in _DAY_ORDER if d in days)


def _redate_lines(plan: Plan) -> list[str]:
    r = plan.redate
    if r.recent_days == 0:
        return ["Re-dating: off", ""]
    lines = [f"Re-dating: every {r.every_hours:g} h, studies acquired since {r.since} "
             f"(last {r.recent_days} days) on the local store: {len(r.study_uids):,} "
             f"studies, {_mb(r.megabytes)}"]
    if r.volume_mb is not None:
        lines.append(f"  and a round as soon as nearline studies worth {_mb(r.volume_mb)} "
                     "have been recalled into the local store since the last "
                     "(redate.headroom_fraction)")
    return [*lines, ""]


def _mb(megabytes: float) -> str:
    unit, per = size_unit(megabytes)
    return f"{megabytes / per:,.2f} {unit}"


def size_unit(largest_mb: float) -> tuple[str, float]:
    """The unit a table of sizes up to `largest_mb` reads best in, and MB per unit: GB from
    1 GB on, MB below (where GB would print 0.00)."""
    return ("GB", 1000.0) if largest_mb >= 1000 else ("MB", 1.0)


def _section(title: str, rows: list[list[str]]) -> list[str]:
    return [f"{title}:", *_table(rows), ""]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out
