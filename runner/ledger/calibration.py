"""Read models for calibration beyond the retrieve timings: device trouble against concurrency,
and the forward and verify rates a pilot run reached (each a bounded read of its latest rows).

`pilot_rates` reads them read-only, outside a run, for `plan --forecast` (as
`queries.pilot_timings` does the timings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from runner.ledger.queries import QuerySource, ReadOnly

# The latest rows each figure is read from: enough for rates, bounded however large the ledger.
LATEST_RETRIEVES = 1000
LATEST_ROWS = 5000
# Outcomes that are the device's trouble, not the study's (runner.execute.devices).
TROUBLE = ("aborted", "timeout", "no_association", "out_of_resources")


@dataclass(frozen=True, slots=True)
class PilotRates:
    """What the ledger measured besides retrieve timings (None: nothing to measure from)."""

    trouble_by_concurrency: dict[int, tuple[int, int]] = field(default_factory=dict)
    """retrieves in flight on the device at a retrieve's start (itself included) ->
    (retrieves started so, those that ended in device trouble: stall, lock-up, refusal)."""
    forward_mb_per_s: float | None = None
    """MB forwarded to the destination per second, over the latest forwards' span."""
    forwards: int = 0
    verified_per_hour: float | None = None
    """Studies verified per hour, over the latest verifications' span."""
    verifications: int = 0


def trouble_by_concurrency(src: QuerySource) -> dict[int, tuple[int, int]]:
    """Of the latest ended retrieves, by how many were in flight on their device at their start
    (itself included): how many, and how many ended in device trouble."""
    rows = src.query(f"""
        WITH latest AS (
            SELECT retrieve_id, device, started_at, ended_at, category FROM retrieves
            WHERE ended_at IS NOT NULL ORDER BY started_at DESC LIMIT {LATEST_RETRIEVES})
        SELECT concurrency, count(*), count(*) FILTER (WHERE trouble) FROM (
            SELECT a.retrieve_id, count(*) AS concurrency,
                   any_value(a.category IN {TROUBLE}) AS trouble
            FROM latest a JOIN latest b ON a.device = b.device
                 AND b.started_at <= a.started_at AND b.ended_at > a.started_at
            GROUP BY a.retrieve_id)
        GROUP BY concurrency ORDER BY concurrency""")
    return {int(n): (int(total), int(trouble)) for n, total, trouble in rows}


def forward_rate(src: QuerySource) -> tuple[float | None, int]:
    """MB per second forwarded over the latest successful forwards, and how many."""
    rows = src.query(f"""
        WITH f AS (SELECT sop_instance_uid, attempted_at FROM forwards WHERE ok
                   ORDER BY attempted_at DESC LIMIT {LATEST_ROWS})
        SELECT count(*), (SELECT coalesce(sum(b), 0) / 1e6 FROM (
                   SELECT max(bytes) AS b FROM receipts
                   WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM f)
                   GROUP BY sop_instance_uid)),
               epoch(max(attempted_at) - min(attempted_at))
        FROM f""")
    count, mb, span = rows[0]
    return (float(mb) / float(span) if span else None), int(count)


def verify_rate(src: QuerySource) -> tuple[float | None, int]:
    """Studies verified per hour over the latest successful verifications, and how many."""
    rows = src.query(f"""
        SELECT count(*), epoch(max(verified_at) - min(verified_at)) FROM (
            SELECT verified_at FROM verifications WHERE ok
            ORDER BY verified_at DESC LIMIT {LATEST_ROWS})""")
    count, span = rows[0]
    return (int(count) * 3600.0 / float(span) if span else None), int(count)


def measured_rates(src: QuerySource) -> PilotRates:
    """Every figure of `PilotRates` from the ledger."""
    forward, forwards = forward_rate(src)
    verified, verifications = verify_rate(src)
    return PilotRates(trouble_by_concurrency(src), forward, forwards, verified, verifications)


def pilot_rates(path: Path) -> PilotRates:
    """`measured_rates` of the ledger at `path`, read-only; empty without one (or while a run
    holds it)."""
    if not path.exists():
        return PilotRates()
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return measured_rates(ReadOnly(conn))
    except duckdb.Error:
        return PilotRates()
