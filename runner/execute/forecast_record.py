"""The forecast a run starts from, kept in the ledger to be compared with what it did.

At its start a run forecasts the profile's own strategy for exactly the studies it will
migrate (calibrated by the ledger's earlier retrieves, as `plan --forecast` is), and records
it as an event of kind `forecast`; `status` and the sign-off report show it against the run's
actual hours, TB per week, recalls, dead time and lock-ups (runner.ledger.queries).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from runner.execute.work import StudyWork
from runner.ledger import Ledger
from runner.ledger.queries import retrieve_timings
from runner.plan.model import Plan
from runner.profile.models import SiteProfile
from runner.tiering.forecast import forecast_detail, run_forecast

FORECAST_EVENT = "forecast"


def record_forecast(ledger: Ledger, profile: SiteProfile, plan: Plan, works: list[StudyWork],
                    wall_clock: Callable[[ZoneInfo], datetime] = datetime.now) -> None:
    """Forecast this run's studies from now on the schedule's clock (`wall_clock`, the
    scheduler's) and record it (nothing when there is nothing to do)."""
    if not works:
        return
    start = wall_clock(ZoneInfo(plan.timezone)).replace(tzinfo=None)
    result = run_forecast(profile, plan, {w.study.study_uid for w in works}, start,
                          retrieve_timings(ledger))
    gigabytes = sum(w.megabytes for w in works) / 1000
    ledger.record_event(FORECAST_EVENT, detail=forecast_detail(result, gigabytes))
