"""The sign-off report's sections on how the work went: throughput over time by tier,
per-device performance and dead time, total work, retries and failures (each returns HTML)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import groupby

from runner.ledger.queries import RedateTotals
from runner.report import fmt
from runner.report.chart import bars_by_week, tiers_of, weekly_chart
from runner.report.collect import ReportData
from runner.report.markup import Col, key_values, para, table, tag
from runner.report.model import Failure, Periods, Throughput, Work

FAILURES_SHOWN = 25
STEP_TITLES = {"retrieve": "Retrieves (C-MOVE) that did not succeed",
               "store": "Stores (C-STORE) the destination refused",
               "quarantine": "Instances set aside (not forwarded)",
               "verify": "Destination checks that came back short"}


def throughput_section(data: ReportData) -> str:
    """Data received per week by tier (chart and table), and the busiest day and hour."""
    parts = [tag("h2", "Throughput")]
    if not any(point.bytes for point in data.weekly):
        parts.append(para("No throughput to show: no instance has been received for the "
                          "studies in this scope.", "empty"))
        return tag("section", "".join(parts), "major")
    caption = (f"Data received per week (weeks start on Monday, {data.identity.timezone}), "
               "stacked by the storage tier the study was planned from; every receipt "
               "counts, repeats included.")
    parts += [tag("figure", weekly_chart(data.weekly) + tag("figcaption", caption)),
              para(_peaks(data)), _weekly_table(data.weekly)]
    return tag("section", "".join(parts), "major")


def _peaks(data: ReportData) -> str:
    days = _totals_by_bucket(data.daily)
    hours = _totals_by_bucket(data.hourly)
    active = [value for _, value in days if value]
    best_day = max(days, key=lambda item: item[1])
    best_hour = max(hours, key=lambda item: item[1])
    return (f"Busiest day: {fmt.day(best_day[0])}, {fmt.size(best_day[1])}. "
            f"Busiest hour: {fmt.when(best_hour[0])}, {fmt.size(best_hour[1])} "
            f"({best_hour[1] / 3.6e9:,.2f} MB/s). Average per day with data: "
            f"{fmt.size(sum(active) / len(active))} over {len(active):,} days.")


def _totals_by_bucket(points: Sequence[Throughput]) -> list[tuple[datetime, int]]:
    return [(bucket, sum(p.bytes for p in group))
            for bucket, group in groupby(points, key=lambda p: p.bucket)]


def _weekly_table(points: Sequence[Throughput]) -> str:
    bars = bars_by_week(points)
    tiers = tiers_of(bars)
    unit, factor = fmt.size_unit(max(bar.total for bar in bars))
    instances: dict[datetime, int] = {}
    for point in points:
        instances[point.bucket] = instances.get(point.bucket, 0) + point.instances
    cols = [Col("Week starting"), *(Col(f"{tier} ({unit})", "num") for tier in tiers),
            Col(f"Total ({unit})", "num"), Col("Instances", "num")]
    rows = [[fmt.day(bar.start),
             *(fmt.decimal(bar.by_tier.get(tier, 0) / factor, 3) for tier in tiers),
             fmt.decimal(bar.total / factor, 3), fmt.count(instances[bar.start])]
            for bar in bars]
    total = ["Total", *(fmt.decimal(sum(b.by_tier.get(t, 0) for b in bars) / factor, 3)
                        for t in tiers),
             fmt.decimal(sum(b.total for b in bars) / factor, 3),
             fmt.count(sum(instances.values()))]
    return tag("h3", "Per week") + table(cols, rows, "small", total=total)


def devices_section(data: ReportData) -> str:
    """Retrieves, failures, data and MB/s per source device; dead time and down time."""
    parts = [tag("h2", "Source devices")]
    if not data.devices:
        parts.append(para("No device activity: no retrieve was sent for the studies in "
                          "this scope.", "empty"))
    else:
        parts += [_device_table(data), para(
            "Busy time: the time one or more retrieves were running on the device; "
            "MB/s is the data received from it over its busy time.", "note")]
    parts += [tag("h3", "Dead time and down time"), _dead_time(data)]
    return tag("section", "".join(parts), "major")


def _device_table(data: ReportData) -> str:
    cols = [Col("Device"), Col("Retrieves", "num"), Col("Failed", "num"),
            Col("Re-dates", "num"), Col("Instances", "num"), Col("Data", "num"),
            Col("Busy time", "num"), Col("MB/s", "num"), Col("Mean retrieve", "num")]
    rows = [[d.device, fmt.count(d.retrieves),
             fmt.count(d.failed_retrieves)
             + (f" (+{d.unfinished_retrieves:,} unfinished)" if d.unfinished_retrieves else ""),
             fmt.count(d.redates), fmt.count(d.receipts), fmt.size(d.bytes),
             fmt.duration(d.busy_seconds), fmt.decimal(d.mb_per_second),
             fmt.duration(d.mean_retrieve_seconds)] for d in data.devices]
    return table(cols, rows, "small")


def _dead_time(data: ReportData) -> str:
    if not data.dead_time and not data.down_time:
        return para("No dead time or down time was recorded (dead time: studies waiting "
                    "while no retrieve was in flight).", "empty")
    dead = {p.device: p for p in data.dead_time}
    down = {p.device: p for p in data.down_time}
    cols = [Col("Device"), Col("Dead-time periods", "num"), Col("Dead time", "num"),
            Col("Down periods", "num"), Col("Down time", "num")]
    rows = [[device, *_period_cells(dead.get(device)), *_period_cells(down.get(device))]
            for device in sorted(dead.keys() | down.keys())]
    note = para("Dead time: studies were waiting and no retrieve was running ('all "
                "devices': site-wide). A period with no recorded end ('open') counts until "
                "its run ended. Not narrowed to an interim report's scope.", "note")
    return table(cols, rows, "small") + note


def _period_cells(periods: Periods | None) -> list[str]:
    if periods is None:
        return ["0", fmt.duration(0)]
    opened = f" ({periods.open_periods:,} open)" if periods.open_periods else ""
    return [fmt.count(periods.periods) + opened, fmt.duration(periods.seconds)]


def work_section(data: ReportData) -> str:
    """The total work the migration caused, then retries and failures with reasons."""
    work = data.work
    pairs = [
        ("Retrieves sent (C-MOVE)", f"{work.retrieves:,}: {work.migrate_retrieves:,} to "
         f"migrate, {work.repair_retrieves:,} to repair, {work.redate_retrieves:,} re-dates"),
        ("Repeat retrieves", f"{work.repeat_retrieves:,} (retrieves of a study after its "
         "first, re-dates not counted)"),
        ("Re-dates", f"{_redates(work).describe()} (each retrieves a recent study to "
         "refresh its last access on the source's local store; the copy is discarded)"),
        ("Instances received", f"{work.receipts:,}, of which {work.repeat_receipts:,} had "
         "been received before"),
        ("Data received", fmt.size(work.bytes_received)),
        ("Store attempts (C-STORE)", f"{work.store_attempts:,}, "
         f"{work.failed_store_attempts:,} refused or failed"),
        ("Destination checks", f"{work.checks:,}, {work.short_checks:,} came back short"),
    ]
    parts = [tag("h2", "Total work"), key_values(pairs), para(
        "Recalls from nearline or offline storage happen inside the source PACS and are "
        "not visible to the runner; re-dates and repeat retrieves are the part of that "
        "work the runner caused and can count.", "note"),
        tag("h2", "Retries and failures"), _failures(data.failures)]
    return tag("section", "".join(parts))


def _redates(work: Work) -> RedateTotals:
    return RedateTotals(work.redate_retrieves, work.redated_studies, work.failed_redates)


def _failures(failures: Sequence[Failure]) -> str:
    if not failures:
        return para("No failures: every retrieve, store and destination check that finished "
                    "succeeded.", "empty")
    parts = []
    for step, group in groupby(failures, key=lambda f: f.step):
        rows = list(group)
        parts += [tag("h3", STEP_TITLES.get(step, step)), _failure_table(rows[:FAILURES_SHOWN])]
        if len(rows) > FAILURES_SHOWN:
            rest = rows[FAILURES_SHOWN:]
            parts.append(para(f"{len(rest):,} more reasons, {sum(f.occurrences for f in rest):,}"
                              " occurrences.", "note"))
    return "".join(parts)


def _failure_table(rows: Sequence[Failure]) -> str:
    cols = [Col("Category", width="18%"), Col("Reason", width="46%"),
            Col("Times", "num", "12%"), Col("Studies", "num", "12%"),
            Col("Instances", "num", "12%")]
    return table(cols, [[f.category.replace("_", " "), f.reason or "(no detail given)",
                         fmt.count(f.occurrences), fmt.count(f.studies),
                         fmt.count(f.instances)] for f in rows], "small")
