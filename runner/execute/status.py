"""`pacsmig status`: where the migration stands, read from the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from runner.execute.priority.inbox import INBOX_FILENAME, Inbox
from runner.execute.run import open_ledger
from runner.ledger.priority_queries import RequestRow, priority_summary, request_rows
from runner.ledger.queries import (
    ForecastActual,
    QuerySource,
    RedateTotals,
    StatusSummary,
    error_text,
    forecasts_against_actuals,
    redate_totals,
    status_summary,
)
from runner.morph.loaded import LoadedProfile
from runner.plan.compile import schedule_slots
from runner.plan.schedule import schedule_now
from runner.tiering.forecast import figure_text

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
FROM study_status
"""

_REASONS = """
SELECT status, coalesce(reason, ''), count(*)
FROM study_status
WHERE planned AND status NOT IN ('verified', 'pending')
GROUP BY ALL ORDER BY status, count(*) DESC, 2
"""


# The priority lane's triggers: polls that failed, clinic-list rows that could not be read,
# lookups at the source that failed (each retried).
_PRIORITY_PROBLEMS = """
SELECT count(*), arg_max(coalesce(detail->>'problem', detail->>'detail'), occurred_at)
FROM events WHERE kind IN ('priority_trigger_problem', 'priority_lookup_failed')
"""


@dataclass(frozen=True, slots=True)
class StatusReads:
    """Everything `status` reads from the ledger."""

    summary: StatusSummary
    events: tuple[Any, ...]
    runs: tuple[Any, ...]
    redates: RedateTotals
    runs_forecast: list[ForecastActual]
    census: tuple[Any, ...]
    reasons: list[tuple[Any, ...]]
    priority: list[RequestRow]
    priority_problems: tuple[Any, ...]


def read_status(ledger: QuerySource) -> StatusReads:
    """The ledger's side of `status` (benchmarks/ledger_scale.py times it)."""
    return StatusReads(status_summary(ledger), ledger.query(_EVENTS)[0],
                       ledger.query(_RUNS)[0], redate_totals(ledger),
                       forecasts_against_actuals(ledger), ledger.query(_CENSUS)[0],
                       ledger.query(_REASONS), request_rows(ledger),
                       ledger.query(_PRIORITY_PROBLEMS)[0])


def status_lines(loaded: LoadedProfile) -> list[str]:
    """The status summary for a person."""
    ledger = open_ledger(loaded)
    try:
        read = read_status(ledger)
    finally:
        ledger.close()
    summary = read.summary
    dead, stalls, downs, ups = read.events
    runs, first, last = read.runs
    lines = [f"Migration status of {loaded.profile.site.name} (ledger {ledger.path})",
             f"{runs} runs" + (f", from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
                               if first else ""), *census_lines(read.census), ""]
    lines += _study_lines(summary)
    lines += _reason_lines(read.reasons)
    lines += _device_lines(summary)
    zone = ZoneInfo(loaded.profile.site.timezone)
    lines += ["", schedule_now(schedule_slots(loaded.profile), datetime.now(zone)).line()]
    lines += ["", f"Dead time (studies waiting, nothing in flight): {_hours(float(dead))}; "
                  f"stalled retrieves aborted: {stalls}; devices down {downs} times, back "
                  f"{ups} times", f"Re-dates: {read.redates.describe()}"]
    lines += _against_actual(read.runs_forecast[-1]) if read.runs_forecast else []
    lines += _priority_lines(read.priority)
    count, latest = read.priority_problems
    if count:
        lines.append(f"  Trigger problems: {count} (latest: {latest})")
    waiting = Inbox(loaded.profile.reports.dir / INBOX_FILENAME).waiting()
    if waiting:
        lines.append(f"Priority inbox: {waiting} requests kept, waiting for a run to serve them")
    return lines


PRIORITY_SHOWN = 10  # requests not yet served, listed one by one


def _priority_lines(rows: list[RequestRow]) -> list[str]:
    """The priority lane: its totals and latencies, and the requests not yet served."""
    if not rows:
        return []
    summary = priority_summary(rows)
    waiting = [r for r in rows if not r.served]
    lines = ["", f"Priority lane: {summary.requests} requests, {summary.served} served, "
                 f"{summary.open} not yet resolved; studies: {summary.moved} to move, "
                 f"{summary.verified} verified, {summary.already_there} already there",
             f"  request to first retrieve (p50/p90/max): {_spread(summary.first_retrieve)}; "
             f"to verified: {_spread(summary.to_verified)}"]
    if waiting:
        lines.append(f"  Waiting ({len(waiting)}):")
    lines += [f"    {r.received_at:%Y-%m-%d %H:%M} UTC  {r.trigger:8} {r.patient_masked:>12}  "
              f"due {r.due.isoformat() if r.due else 'now':10}  {r.outcome:8} "
              f"{r.verified}/{r.to_move} verified" for r in waiting[-PRIORITY_SHOWN:]]
    return lines


def _spread(values: tuple[float, float, float] | None) -> str:
    return "none yet" if values is None else " / ".join(_hours(v) for v in values)


def _against_actual(run: ForecastActual) -> list[str]:
    """The last run's forecast against what it did, with the error."""
    state = "under way" if run.open else "finished"
    lines = ["", f"Forecast against actual, last run ({state}, from "
                 f"{run.started_at:%Y-%m-%d %H:%M} UTC, {run.forecast['strategy']}):"]
    for name, forecast, actual in run.rows():
        lines.append(f"  {name:28}{figure_text(name, forecast):>12}"
                     f"{figure_text(name, actual):>12}   {error_text(forecast, actual)}")
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


def _study_lines(summary: StatusSummary) -> list[str]:
    largest = max((max(r.planned_gb, r.received_gb) for r in summary.by_status), default=0.0)
    unit, factor = ("GB", 1.0) if largest >= 1 else ("MB", 1e3)  # one unit for the table
    lines = [f"  status       tier      studies   planned {unit}   received {unit}"]
    total = 0
    for row in summary.by_status:
        total += row.studies
        lines.append(f"  {row.status:<12} {row.tier:<9} {row.studies:>7,}   "
                     f"{row.planned_gb * factor:>10,.2f}   {row.received_gb * factor:>11,.2f}")
    lines.append(f"  {'total':<22} {total:>7,}")
    return lines


def _reason_lines(rows: list[tuple[str, str, int]]) -> list[str]:
    """The studies not verified (nor pending), by status and reason."""
    if not rows:
        return []
    lines = ["", "  status       studies   reason"]
    for status, reason, count in rows:
        lines.append(f"  {status:<12} {count:>7,}   {reason or '-'}")
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


