"""`pacsmig status`: where the migration stands, read from the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from runner.execute.run import open_ledger
from runner.ledger.queries import StatusSummary, status_summary
from runner.profile.load import LoadedProfile

_EVENTS = """
SELECT coalesce(sum(CAST(detail->>'seconds' AS DOUBLE))
                FILTER (WHERE kind = 'dead_time_end'), 0),
       count(*) FILTER (WHERE kind = 'stall'),
       count(*) FILTER (WHERE kind = 'device_down'),
       count(*) FILTER (WHERE kind = 'device_up')
FROM events
"""

_RUNS = """
SELECT count(*), min(started_at), max(coalesce(ended_at, started_at)) FROM runs
"""

_REDATES = "SELECT count(*) FROM retrieves WHERE purpose = 'redate'"

# Studies given up or checked short, worst first, with the engine's reason (the report's
# Exceptions have every detail; this is what an operator reads first).
_EXCEPTIONS = """
SELECT r.study_uid, r.status, r.source_instances, r.destination_instances,
       coalesce(s.reason, 'checked short at the destination') AS reason, count(*) OVER ()
FROM reconciliation r JOIN studies s USING (study_uid)
WHERE r.status IN ('failed', 'incomplete')
ORDER BY list_position(['failed', 'incomplete'], r.status), s.phase_index, s.order_index
LIMIT 10
"""

# The source's side: its latest census, and every study it holds by what became of it.
_CENSUS = """
SELECT (SELECT arg_max(struct_pack(taken_at, command, complete, queries), taken_at)
        FROM censuses) AS latest,
       count(*) FILTER (WHERE at_source = 'present') AS held,
       coalesce(sum(source_instances) FILTER (WHERE at_source = 'present'), 0) AS instances,
       count(*) FILTER (WHERE status = 'excluded') AS excluded,
       count(*) FILTER (WHERE status <> 'excluded') AS planned,
       count(*) FILTER (WHERE status = 'verified') AS verified,
       count(*) FILTER (WHERE at_source = 'gone') AS gone
FROM reconciliation_detail
"""


def status_lines(loaded: LoadedProfile) -> list[str]:
    """The status summary for a person."""
    ledger = open_ledger(loaded)
    try:
        summary = status_summary(ledger)
        dead, stalls, downs, ups = ledger.query(_EVENTS)[0]
        runs, first, last = ledger.query(_RUNS)[0]
        redates = ledger.query(_REDATES)[0][0]
        census = census_lines(ledger.query(_CENSUS)[0])
        exceptions = exception_lines(ledger.query(_EXCEPTIONS))
    finally:
        ledger.close()
    lines = [f"Migration status of {loaded.profile.site.name} (ledger {ledger.path})",
             f"{runs} runs" + (f", from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
                               if first else ""), *census, ""]
    lines += _study_lines(summary)
    lines += exceptions
    lines += _device_lines(summary)
    lines += ["", *_throttles(loaded)]
    lines += ["", f"Dead time (studies waiting, nothing in flight): {_hours(float(dead))}; "
                  f"stalled retrieves aborted: {stalls}; devices down {downs} times, back "
                  f"{ups} times; re-date retrieves: {redates}"]
    return lines


def census_lines(row: tuple[Any, ...]) -> list[str]:
    """The source's side of the status: what its census found, what became of it."""
    latest, held, instances, excluded, planned, verified, gone = row
    if latest is None:
        return ["No census of the source is recorded yet (`pacsmig run` takes one)."]
    when = f"{latest['taken_at']:%Y-%m-%d %H:%M} UTC by {latest['command']}"
    lines = [f"Source: holds {held:,} studies / {instances:,} instances (census of {when}"
             f"{'' if latest['complete'] else ', INCOMPLETE'}): planned {planned:,}, excluded "
             f"{excluded:,}, verified {verified:,}, not yet verified {planned - verified:,}"]
    if gone:
        lines.append(f"  {gone:,} studies are no longer at the source (deleted or merged "
                     "there); kept at the destination")
    return lines


def exception_lines(rows: list[tuple[Any, ...]]) -> list[str]:
    """The studies not verified that need attention, each with its status and reason."""
    if not rows:
        return []
    lines = ["", "  study                                                             status      "
             "source  destination  reason"]
    for uid, status, source, destination, reason, _ in rows:
        shown = "?" if source is None else f"{source:,}"
        lines.append(f"  {uid:<65} {status:<10} {shown:>6}  {destination:>11,}  {reason}")
    if rows[0][5] > len(rows):
        lines.append(f"  ... {rows[0][5] - len(rows):,} more: `pacsmig report` lists every one")
    return lines


def _throttles(loaded: LoadedProfile) -> list[str]:
    """The throttle in force now and its next change (the profile's schedule)."""
    from runner.execute.throttle import schedule_now_and_next
    from runner.plan.compile import schedule_slots

    profile = loaded.profile
    now = datetime.now(ZoneInfo(profile.site.timezone))
    slots = schedule_slots(profile)
    lines = [f"Throttle by schedule: {schedule_now_and_next(slots, None, now)}"]
    lines += [f"Throttle of {d.id}: {schedule_now_and_next(slots, d.throttle, now)}"
              for d in profile.source.devices if d.throttle]
    return lines


def _study_lines(summary: StatusSummary) -> list[str]:
    lines = ["  status       tier      studies   planned GB   received GB"]
    total = 0
    for row in summary.by_status:
        total += row.studies
        lines.append(f"  {row.status:<12} {row.tier:<9} {row.studies:>7,}   "
                     f"{row.planned_gb:>10,.2f}   {row.received_gb:>11,.2f}")
    lines.append(f"  {'total':<22} {total:>7,}")
    return lines


def _device_lines(summary: StatusSummary) -> list[str]:
    lines = ["", "  device   retrieves   open   failed   instances   failed instances"]
    for d in summary.devices:
        lines.append(f"  {d.device:<8} {d.retrieves:>9,}   {d.open:>4,}   {d.failed:>6,}   "
                     f"{d.completed_instances:>9,}   {d.failed_instances:>16,}")
    return lines


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 3600:.2f} h"


