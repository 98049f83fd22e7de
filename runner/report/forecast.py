"""The sign-off report's "Forecast against actual": each run's forecast beside what it did."""

from __future__ import annotations

from runner.ledger.queries import ForecastActual, error_text
from runner.report import fmt
from runner.report.collect import ReportData
from runner.report.markup import Col, para, table, tag
from runner.tiering.forecast import figure_text

RUNS_SHOWN = 10  # the latest runs


def forecast_section(data: ReportData) -> str:
    """The forecast each run started from against its hours, TB per week, recalls, dead
    time and lock-ups, with the error (the latest RUNS_SHOWN runs)."""
    parts = [tag("h2", "Forecast against actual")]
    runs = data.forecasts[-RUNS_SHOWN:]
    if not runs:
        parts.append(para("No run recorded a forecast (runs before this version did not).",
                          "empty"))
        return tag("section", "".join(parts))
    cols = [Col("Run", width="22%"), Col("Measure", width="30%"), Col("Forecast", "num"),
            Col("Actual", "num"), Col("Error", "num")]
    rows = [row for run in runs for row in _rows(run)]
    parts += [table(cols, rows, "small"), para(
        "Each run forecasts the profile's strategy for the studies it will migrate, from "
        "the profile's figures or those a pilot run measured; sizes are the plan's "
        "estimates where the source gave none. Recalls are the nearline studies the run "
        "retrieved; evictions inside the source PACS are not visible to the runner.",
        "note")]
    return tag("section", "".join(parts))


def _rows(run: ForecastActual) -> list[list[str]]:
    head = f"{fmt.when(run.started_at)}{' (under way)' if run.open else ''}"
    return [[head if i == 0 else "", name, figure_text(name, forecast),
             figure_text(name, actual), error_text(forecast, actual)]
            for i, (name, forecast, actual) in enumerate(run.rows())]
