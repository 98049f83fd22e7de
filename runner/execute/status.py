"""`pacsmig status`: where the migration stands, read from the ledger."""

from __future__ import annotations

from runner.execute.run import open_ledger
from runner.ledger.queries import status_summary
from runner.profile.load import LoadedProfile


def status_lines(loaded: LoadedProfile) -> list[str]:
    """The status summary for a person."""
    ledger = open_ledger(loaded)
    try:
        summary = status_summary(ledger)
    finally:
        ledger.close()
    lines = [f"Migration status of {loaded.profile.site.name} (ledger {ledger.path})", "",
             "  status       tier      studies   planned GB   received GB"]
    total = 0
    for row in summary.by_status:
        total += row.studies
        lines.append(f"  {row.status:<12} {row.tier:<9} {row.studies:>7,}   "
                     f"{row.planned_gb:>10,.2f}   {row.received_gb:>11,.2f}")
    lines.append(f"  {'total':<22} {total:>7,}")
    lines += ["", "  device   retrieves   open   failed   instances   failed instances"]
    for d in summary.devices:
        lines.append(f"  {d.device:<8} {d.retrieves:>9,}   {d.open:>4,}   {d.failed:>6,}   "
                     f"{d.completed_instances:>9,}   {d.failed_instances:>16,}")
    return lines
