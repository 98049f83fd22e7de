"""Read models over the ledger for the engine and the CLI: what is left to do, what to resume,
what to verify, where the migration stands, and the reconciliation rows.

Reads go through `Ledger.query` (or any object with the same `query` method). DuckDB lets one
process hold the file read-write and the writer thread owns that connection, so reads run on
that thread too, after everything recorded before them is committed: a read always sees the
writes that preceded it, and no second connection competes for the file. Each read scans only
the columns it needs; per-study reads filter every fact table on `study_uid` first.
Sizes: GB = 10^9 bytes (planned sizes: MB / 1000). `pilot_timings` is the one read made
outside a run, read-only, for `plan --forecast`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb


class QuerySource(Protocol):
    """Anything that runs SQL on the ledger and returns the rows (a `Ledger`)."""

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True, slots=True)
class StudyToDo:
    """A study not yet verified nor given up, in plan order; `status` is the reconciliation's."""

    study_uid: str
    tier: str
    device: str | None
    phase_index: int
    order_index: int
    planned_instances: int | None
    planned_mb: float
    status: str
    engine_status: str
    attempts: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class PendingForward:
    """An instance in the spool that has not been forwarded since it was last received."""

    sop_instance_uid: str
    study_uid: str
    spool_name: str
    received_at: datetime
    retrieve_id: str | None
    forward_attempts: int


@dataclass(frozen=True, slots=True)
class UnverifiedInstance:
    """A forwarded instance the destination has not confirmed; `dest_uid` is what to ask for."""

    sop_instance_uid: str
    dest_uid: str
    series_uid: str
    forwarded_at: datetime


@dataclass(frozen=True, slots=True)
class StatusCount:
    """Studies in one reconciliation status and tier, with their planned and received sizes."""

    status: str
    tier: str
    studies: int
    planned_gb: float
    received_gb: float


@dataclass(frozen=True, slots=True)
class DeviceRetrieves:
    """Retrieves sent to one source device: how many, still open, failed, sub-op counts."""

    device: str
    retrieves: int
    open: int
    failed: int
    completed_instances: int
    failed_instances: int


@dataclass(frozen=True, slots=True)
class StatusSummary:
    """Where the migration stands: studies by status and tier; retrieves by device."""

    by_status: tuple[StatusCount, ...]
    devices: tuple[DeviceRetrieves, ...]


@dataclass(frozen=True, slots=True)
class ReconciliationRow:
    """One row of the `reconciliation` view (see the spec)."""

    study_uid: str
    tier: str
    source_instances: int | None
    received_instances: int
    destination_instances: int
    status: str


_STUDIES_TO_DO = """
SELECT s.study_uid, s.tier, s.device, s.phase_index, s.order_index, s.planned_instances,
       s.planned_mb, r.status, s.status, s.attempts, s.reason
FROM studies s JOIN study_status r USING (study_uid)
WHERE r.status IN ('pending', 'in_progress', 'incomplete')
ORDER BY s.phase_index, s.order_index, s.study_uid
"""


def studies_to_do(src: QuerySource) -> list[StudyToDo]:
    """Studies still to migrate (pending, in progress, incomplete), in plan order."""
    return [StudyToDo(*row) for row in src.query(_STUDIES_TO_DO)]


def unforwarded_instances(src: QuerySource, study_uid: str | None = None) -> list[PendingForward]:
    """Instances received but not forwarded since (nor quarantined), oldest first: resume."""
    sql = ("SELECT sop_instance_uid, study_uid, spool_name, received_at, retrieve_id,"
           " forward_attempts FROM open_instances WHERE state = 'received'")
    params: list[object] = []
    if study_uid is not None:
        sql += " AND study_uid = ?"
        params.append(study_uid)
    rows = src.query(sql + " ORDER BY received_at, sop_instance_uid", params)
    return [PendingForward(*row) for row in rows]


def unverified_instances(src: QuerySource, study_uid: str) -> list[UnverifiedInstance]:
    """A study's instances forwarded but not yet confirmed by the destination."""
    rows = src.query(
        "SELECT sop_instance_uid, coalesce(dest_sop_instance_uid, sop_instance_uid),"
        " series_uid, forwarded_at FROM instances WHERE study_uid = ? AND state = 'forwarded'"
        " ORDER BY series_uid, sop_instance_uid",
        [study_uid],
    )
    return [UnverifiedInstance(*row) for row in rows]


def unverified_counts(src: QuerySource) -> dict[str, int]:
    """For each study with some, how many instances are forwarded but not yet confirmed."""
    rows = src.query("SELECT study_uid, count(*) FROM open_instances WHERE state = 'forwarded'"
                     " GROUP BY study_uid ORDER BY study_uid")
    return {study_uid: int(count) for study_uid, count in rows}


_BY_STATUS = """
SELECT r.status, r.tier, count(*), coalesce(sum(r.planned_mb), 0) / 1e3,
       coalesce(sum(g.received_bytes), 0) / 1e9
FROM study_status r LEFT JOIN study_state g USING (study_uid) WHERE r.planned
GROUP BY r.status, r.tier ORDER BY r.status, r.tier
"""

_BY_DEVICE = """
SELECT device, count(*), count(*) FILTER (WHERE ended_at IS NULL),
       count(*) FILTER (WHERE ended_at IS NOT NULL AND category NOT IN ('success', 'warning')),
       coalesce(sum(completed), 0), coalesce(sum(failed), 0)
FROM retrieves GROUP BY device ORDER BY device
"""


def status_summary(src: QuerySource) -> StatusSummary:
    """Counts and GB by reconciliation status and tier; retrieves and failures per device."""
    by_status = tuple(StatusCount(str(status), str(tier), int(n), float(planned), float(got))
                      for status, tier, n, planned, got in src.query(_BY_STATUS))
    devices = tuple(DeviceRetrieves(str(device), *(int(v) for v in counts))
                    for device, *counts in src.query(_BY_DEVICE))
    return StatusSummary(by_status, devices)


def reconciliation(src: QuerySource) -> list[ReconciliationRow]:
    """The `reconciliation` view, one row per study, ordered by study UID."""
    rows = src.query("SELECT study_uid, tier, source_instances, received_instances,"
                     " destination_instances, status FROM reconciliation ORDER BY study_uid")
    return [ReconciliationRow(*row) for row in rows]


def last_redates(src: QuerySource) -> dict[str, datetime]:
    """For each study re-dated before, when its last successful re-date retrieve ended."""
    rows = src.query("SELECT study_uid, max(ended_at) FROM retrieves WHERE purpose = 'redate'"
                     " AND category IN ('success', 'warning') AND ended_at IS NOT NULL"
                     " GROUP BY study_uid")
    return {str(study_uid): ended for study_uid, ended in rows}


# A re-date that ended without success (a retrieve still open is neither).
REDATE_FAILED = ("ended_at IS NOT NULL AND category NOT IN ('success', 'warning')")


@dataclass(frozen=True, slots=True)
class RedateTotals:
    """Re-dates as every output counts them: retrieves, distinct studies, failed retrieves."""

    retrieves: int
    studies: int
    failed: int

    def describe(self) -> str:
        """The same words in the console, `status` and the report."""
        if not self.retrieves:
            return "none"
        failed = f", {self.failed:,} failed" if self.failed else ""
        return (f"{self.retrieves:,} retrieves of {self.studies:,} recent "
                f"{'study' if self.studies == 1 else 'studies'}{failed}")


def redate_totals(src: QuerySource) -> RedateTotals:
    """The ledger's re-dates, all runs."""
    rows = src.query("SELECT count(*), count(DISTINCT study_uid), "
                     f"count(*) FILTER (WHERE {REDATE_FAILED}) "
                     "FROM retrieves WHERE purpose = 'redate'")
    return RedateTotals(*(int(v) for v in rows[0]))


@dataclass(frozen=True, slots=True)
class RetrieveTiming:
    """A successful migrate retrieve's timing: tier, MB received, to first and last instance;
    or a re-date's (`purpose` "redate"): the study's planned MB and its whole time."""

    tier: str
    megabytes: float
    latency_seconds: float
    flow_seconds: float
    purpose: str = "migrate"
    device: str = ""
    first_at: float | None = None  # its first instance, in seconds since 1970 (migrate ones)
    modality: str = ""
    instances: int = 0  # received (a re-date's: as planned; 0 unknown)
    in_flight: int = 1  # a re-date's: retrieves on its device at its start, itself included


# Calibration reads the latest successful migrate retrieves, at most this many: enough for
# medians, and a bounded read however large the ledger grows.
CALIBRATION_RETRIEVES = 1000


def retrieve_timings(src: QuerySource) -> list[RetrieveTiming]:
    """The latest successful migrate retrieves that brought instances, and the latest
    successful re-dates (for calibration)."""
    rows = src.query(f"""
        WITH latest AS (
            SELECT retrieve_id, study_uid, device, started_at FROM retrieves
            WHERE purpose = 'migrate' AND category IN ('success', 'warning')
            ORDER BY started_at DESC LIMIT {CALIBRATION_RETRIEVES})
        SELECT s.tier, sum(c.bytes) / 1e6,
               epoch(min(c.received_at) - r.started_at),
               epoch(max(c.received_at) - min(c.received_at)), r.device,
               epoch(min(c.received_at)), s.modality, count(*)
        FROM latest r
        JOIN receipts c USING (retrieve_id)
        JOIN studies s ON s.study_uid = r.study_uid
        GROUP BY r.retrieve_id, s.tier, r.started_at, r.device, s.modality
        ORDER BY r.started_at""")
    redates = src.query(f"""
        WITH r AS (
            SELECT retrieve_id, study_uid, device, started_at, ended_at FROM retrieves
            WHERE purpose = 'redate' AND category IN ('success', 'warning')
              AND ended_at IS NOT NULL
            ORDER BY started_at DESC LIMIT {CALIBRATION_RETRIEVES}),
        around AS (  -- the retrieves that may have been in flight with them
            SELECT device, started_at, coalesce(ended_at, now()) AS ended_at FROM retrieves
            WHERE started_at >= (SELECT min(started_at) FROM r) - INTERVAL 1 DAY),
        shared AS (
            SELECT r.retrieve_id, count(*) AS in_flight FROM r JOIN around a
              ON a.device = r.device AND a.started_at <= r.started_at
             AND a.ended_at > r.started_at
            GROUP BY r.retrieve_id)
        SELECT coalesce(s.tier, 'local'), coalesce(s.planned_mb, 0),
               epoch(r.ended_at - r.started_at), coalesce(s.modality, ''),
               coalesce(s.planned_instances, 0), coalesce(shared.in_flight, 1)
        FROM r LEFT JOIN studies s USING (study_uid) LEFT JOIN shared USING (retrieve_id)""")
    return [RetrieveTiming(str(tier), float(mb), float(latency), float(flow), "migrate",
                           str(device), float(first), str(modality), int(count))
            for tier, mb, latency, flow, device, first, modality, count in rows] + \
        [RetrieveTiming(str(tier), float(mb), float(seconds), 0.0, "redate",
                        modality=str(modality), instances=int(count), in_flight=int(shared))
         for tier, mb, seconds, modality, count, shared in redates]


class ReadOnly:
    """A read-only connection as a QuerySource."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, list(params)).fetchall()


def pilot_timings(path: Path) -> list[RetrieveTiming]:
    """The retrieve timings of the ledger at `path`, read-only; none when there is no ledger
    yet or it cannot be read now (a run holds it)."""
    if not path.exists():
        return []
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return retrieve_timings(ReadOnly(conn))
    except duckdb.Error:
        return []


# Each run that recorded the forecast it started from (an event of kind `forecast`), with
# what it did: hours, GB received, nearline studies retrieved (the recalls the runner caused,
# as far as it can see them), dead time and devices that went down during the run.
FORECAST_ACTUAL_SQL = """
WITH f AS (SELECT run_id, detail FROM events WHERE kind = 'forecast'),
w AS (SELECT run_id, started_at, coalesce(ended_at, now()) AS ended_at,
             ended_at IS NULL AS open FROM runs)
SELECT w.run_id, w.started_at, w.open, f.detail,
       epoch(w.ended_at - w.started_at) / 3600.0 AS hours,
       (SELECT coalesce(sum(c.bytes), 0) / 1e9 FROM receipts c
        WHERE c.received_at BETWEEN w.started_at AND w.ended_at) AS gb,
       (SELECT count(DISTINCT t.study_uid) FROM retrieves t JOIN studies s USING (study_uid)
        WHERE t.purpose = 'migrate' AND t.category IN ('success', 'warning')
          AND s.tier <> 'local' AND t.started_at BETWEEN w.started_at AND w.ended_at)
           AS recalls,
       (SELECT coalesce(sum(CAST(d.detail ->> 'seconds' AS DOUBLE)), 0) / 3600.0 FROM events d
        WHERE d.kind = 'dead_time_end' AND d.run_id = w.run_id) AS dead_time_hours,
       (SELECT count(*) FROM events d WHERE d.kind = 'device_down' AND d.run_id = w.run_id)
           AS lockups
FROM f JOIN w USING (run_id)
ORDER BY w.started_at
"""


@dataclass(frozen=True, slots=True)
class ForecastActual:
    """One run: the forecast it started from, and what it did."""

    run_id: str
    started_at: datetime
    open: bool
    forecast: dict[str, Any]
    hours: float
    gb: float
    recalls: int
    dead_time_hours: float
    lockups: int

    def rows(self) -> list[tuple[str, float, float]]:
        """(measure, forecast, actual) for a table."""
        f = self.forecast
        return [("hours", float(f["hours"]), self.hours),
                ("TB per week", _per_week(float(f["gb"]), float(f["hours"])),
                 _per_week(self.gb, self.hours)),
                ("recalls (nearline studies)", float(f["recalls"]), float(self.recalls)),
                ("dead time, hours", float(f["dead_time_hours"]), self.dead_time_hours),
                ("lock-ups (devices down)", float(f["lockups"]), float(self.lockups))]


def _per_week(gb: float, hours: float) -> float:
    return gb / 1000 / hours * 168 if hours > 0 else 0.0


def error_text(forecast: float, actual: float) -> str:
    """The forecast's error against the actual, in words a table can hold."""
    if forecast == actual:
        return "0 %"
    if forecast == 0:
        return "not forecast"
    return f"{(actual - forecast) / forecast:+.0%}"


def forecasts_against_actuals(src: QuerySource) -> list[ForecastActual]:
    """Every run with the forecast it started from, oldest first."""
    return [ForecastActual(str(run_id), started, bool(open_), json.loads(detail),
                           float(hours), float(gb), int(recalls), float(dead), int(lockups))
            for run_id, started, open_, detail, hours, gb, recalls, dead, lockups
            in src.query(FORECAST_ACTUAL_SQL)]


def ledger_forecasts(path: Path) -> list[ForecastActual]:
    """`forecasts_against_actuals` of the ledger at `path`, read-only (none without one)."""
    if not path.exists():
        return []
    with duckdb.connect(str(path), read_only=True) as conn:
        return forecasts_against_actuals(ReadOnly(conn))
