"""The sign-off report's "Priority lane": the requests for patients' priors (HL7 orders and
appointments, worklist entries, clinic lists, the command line), what each moved, and the
latency from request to first retrieve and to verified."""

from __future__ import annotations

from runner.ledger.priority_queries import RequestRow, priority_summary
from runner.morph.accession import masked
from runner.report import fmt
from runner.report.collect import ReportData
from runner.report.markup import Col, key_values, para, table, tag

REQUESTS_SHOWN = 200  # the latest requests listed one by one


def priority_section(data: ReportData) -> str:
    """Counts, latency percentiles, and the latest requests one by one."""
    rows = data.priority
    parts = [tag("h2", "Priority lane")]
    if not rows:
        parts.append(para("No priority request was received.", "empty"))
        return tag("section", "".join(parts))
    summary = priority_summary(rows)
    triggers = ", ".join(f"{name} {count}" for name, count in summary.by_trigger)
    parts.append(key_values([
        ("Requests", f"{summary.requests:,} ({triggers})"),
        ("Served (every prior verified)", f"{summary.served:,}"),
        ("Open (not yet resolved)", f"{summary.open:,}"),
        ("Studies chosen", f"{summary.chosen:,}: {summary.moved:,} to move, "
                           f"{summary.verified:,} verified since requested, "
                           f"{summary.already_there:,} already at the destination"),
        ("Request to first retrieve (p50 / p90 / max)", _spread(summary.first_retrieve)),
        ("Request to every prior verified (p50 / p90 / max)", _spread(summary.to_verified)),
    ]))
    cols = [Col("Received", width="16%"), Col("Trigger"), Col("Patient"), Col("Due"),
            Col("Outcome"), Col("To move", "num"), Col("Verified", "num"),
            Col("First retrieve", "num"), Col("All verified", "num")]
    shown = rows[-REQUESTS_SHOWN:]
    parts.append(table(cols, [_row(r, data.identity.masked) for r in shown], "small"))
    parts.append(para(
        "Latencies run from the moment the request was received (kept in the ledger) to the "
        "first retrieve of one of its studies and to the verification of the last; a request "
        "received while no run was serving it waits for the next run. Studies already "
        "verified before the request are not moved again.", "note"))
    return tag("section", "".join(parts))


def _row(row: RequestRow, mask: bool) -> list[str]:
    patient = masked(row.patient_masked) if mask and "*" not in row.patient_masked \
        else row.patient_masked
    return [fmt.when(row.received_at), f"{row.trigger} {row.event}".strip(), patient,
            row.due.isoformat() if row.due else "", row.outcome, fmt.count(row.to_move),
            fmt.count(row.verified), fmt.duration(row.first_retrieve_s),
            fmt.duration(row.verified_s)]


def _spread(values: tuple[float, float, float] | None) -> str:
    if values is None:
        return "none yet"
    return " / ".join(fmt.duration(v) for v in values)
