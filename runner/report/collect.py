"""Everything a report shows, read from the ledger by the SQL files in one scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runner.ledger import EventKind
from runner.ledger.priority_queries import RequestRow, request_rows
from runner.ledger.queries import ForecastActual, forecasts_against_actuals
from runner.report.model import (
    CensusRow,
    CensusTotal,
    ConflictRow,
    DeviceStats,
    ExclusionRow,
    Failure,
    Headline,
    ObjectKind,
    Periods,
    RuleCount,
    RunGroup,
    SampleCheck,
    SeriesRow,
    Span,
    StatusCount,
    StudyException,
    Throughput,
    Total,
    TranscodeCount,
    Work,
)
from runner.report.scope import ReportScope
from runner.report.source import LedgerReader, sql_text

SERIES_SHOWN = 1000
PENDING_SHOWN = 500


@dataclass(frozen=True, slots=True)
class Identity:
    """Whose migration this is, which profile and runner, when, and what is covered."""

    site_id: str
    site_name: str
    source_name: str
    destination_name: str
    profile_path: str
    profile_sha256: str
    runner_version: str
    ledger_path: str
    timezone: str
    masked: bool
    generated_at: datetime
    scope: ReportScope
    method: tuple[tuple[str, str], ...] = ()  # (what, in words): the migration's scope and method
    rules: tuple[str, ...] = ()  # the profile's morphing rules, in words, in order


@dataclass(frozen=True, slots=True)
class ReportData:
    """Every section's rows for one report."""

    identity: Identity
    runs: list[RunGroup]
    span: Span
    headline: Headline
    statuses: list[StatusCount]
    totals: list[Total]
    failures: list[Failure]
    weekly: list[Throughput]
    daily: list[Throughput]
    hourly: list[Throughput]
    devices: list[DeviceStats]
    dead_time: list[Periods]
    down_time: list[Periods]
    work: Work
    exceptions: list[StudyException]
    series: list[SeriesRow]
    series_total: int
    censuses: list[CensusRow]
    census_totals: list[CensusTotal]
    exclusions: list[ExclusionRow]
    transcodes: list[TranscodeCount]
    object_kinds: list[ObjectKind]
    conflicts: list[ConflictRow]
    rule_counts: list[RuleCount]
    sample_checks: list[SampleCheck]
    forecasts: list[ForecastActual]
    priority: list[RequestRow]


def collect(reader: LedgerReader, identity: Identity) -> ReportData:
    """Run every report query in `identity.scope` (salted with the site id)."""
    reader.set_scope(identity.scope, identity.site_id, identity.masked)
    span = reader.one("span", Span)
    series_sql = f"SELECT * FROM ({sql_text('series')}) WHERE study_status <> 'verified'"
    series = reader.rows_of(f"{series_sql} LIMIT {SERIES_SHOWN}", SeriesRow)
    series_total = reader.rows_of(f"SELECT count(*) AS n FROM ({series_sql})", _count)[0]
    return ReportData(
        identity=identity, runs=reader.rows("runs", RunGroup), span=span,
        headline=reader.one("headline", Headline),
        statuses=reader.rows("status_counts", StatusCount),
        totals=reader.rows("totals", Total), failures=reader.rows("failures", Failure),
        weekly=throughput(reader, "week"), daily=throughput(reader, "day"),
        hourly=throughput(reader, "hour"), devices=reader.rows("devices", DeviceStats),
        dead_time=periods(reader, EventKind.DEAD_TIME_START, EventKind.DEAD_TIME_END, span),
        down_time=periods(reader, EventKind.DEVICE_DOWN, EventKind.DEVICE_UP, span),
        work=reader.one("work", Work),
        exceptions=reader.rows("exceptions", StudyException, {"pending_shown": PENDING_SHOWN}),
        series=series, series_total=series_total,
        censuses=reader.rows("censuses", CensusRow),
        census_totals=reader.rows("census_totals", CensusTotal),
        exclusions=reader.rows("exclusions", ExclusionRow),
        transcodes=reader.rows("transcodes", TranscodeCount),
        object_kinds=reader.rows("object_kinds", ObjectKind),
        conflicts=reader.rows("conflicts", ConflictRow),
        rule_counts=reader.rows("rule_counts", RuleCount),
        sample_checks=reader.rows("sample_checks", SampleCheck),
        forecasts=forecasts_against_actuals(reader), priority=request_rows(reader))


def throughput(reader: LedgerReader, unit: str) -> list[Throughput]:
    """Bytes received per `unit` ('hour', 'day', 'week') and tier, gaps filled with 0."""
    return reader.rows("throughput", Throughput, {"unit": unit})


def periods(reader: LedgerReader, start: str, end: str, span: Span) -> list[Periods]:
    """Per device, the time between `start` and `end` events (open ones until the end)."""
    return reader.rows("periods", Periods, {"start_kind": str(start), "end_kind": str(end),
                                            "ledger_end": span.last_at})


def _count(n: int) -> int:
    return n
