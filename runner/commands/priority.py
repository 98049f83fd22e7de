"""`pacsmig priority`: ask for a patient's priors by hand; the request is kept in the ledger
and served by `pacsmig run` (at once if a run is serving, else when the next one starts)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from runner.morph.loaded import load_profile
from runner.plan.priority import PriorityRequest, Trigger


def priority(profile: Path, patient_id: str, due: date | None, modality: str, issuer: str,
             body_part: str, echo: Callable[[str], object]) -> int:
    """Keep the request; exit code 0 (the CLI refuses a patient ID that cannot be asked)."""
    from runner.execute.priority.lane import kept_fact
    from runner.execute.site import open_ledger

    loaded = load_profile(profile)
    now = datetime.now(UTC)
    request = PriorityRequest(Trigger.MANUAL, patient_id, now, issuer, due,
                              modality.upper(), body_part.upper(), reference=now.isoformat(),
                              event="pacsmig priority")
    ledger = open_ledger(loaded)
    try:
        fact = kept_fact(request, loaded.profile.reports.mask_identifiers)
        ledger.record(fact)
    finally:
        ledger.close()
    echo(f"Priority request {request.request_id[:8]} kept for patient {fact.patient_masked}"
         f"{f', due {due.isoformat()}' if due else ''}: the next `pacsmig run` moves the "
         "patient's priors first.")
    return 0
