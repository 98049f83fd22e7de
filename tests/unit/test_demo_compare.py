"""`demo --compare`'s hourly break as a profile: the runner pauses as the model's strategy does."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from runner.commands.demo_compare import hourly_break_profile
from runner.plan.throttle import throttle_in_force
from runner.tiering.forecast import forecast_strategies
from runner.tiering.strategy import Strategy
from tests.unit.test_forecast import QUIET, busy_hours, plan_of, profile, recorded_starts


def test_the_hourly_break_profile_pauses_each_hours_last_minutes_and_keeps_the_schedule() -> None:
    site = profile(throttles={"day": {"max_concurrent_retrieves": 2, "delay_seconds": 5},
                              "night": {"max_concurrent_retrieves": 4, "delay_seconds": 1}},
                   schedule=[{"days": ["mon"], "hours": "20:00-06:00", "throttle": "night"},
                             {"throttle": "day"}])
    broken = hourly_break_profile(site, 50)
    plan = plan_of(broken, [], datetime(2026, 11, 30).date())
    monday = datetime(2026, 11, 30)  # a Monday
    assert throttle_in_force(plan.schedule, None, monday.replace(hour=21, minute=49)) == "night"
    assert throttle_in_force(plan.schedule, None, monday.replace(hour=21, minute=50)) is None
    assert throttle_in_force(plan.schedule, None, monday.replace(hour=5, minute=10)) == "night"
    assert throttle_in_force(plan.schedule, None, monday.replace(hour=12, minute=0)) == "day"
    assert throttle_in_force(plan.schedule, None, monday.replace(hour=12, minute=59)) is None
    assert {t.delay_seconds for t in broken.throttles.values()} == {0}


def test_the_runners_hourly_break_is_forecast_as_the_models_hourly_break_strategy() -> None:
    site, plan = busy_hours()
    params = replace(QUIET, device_mb_per_s=1.0)
    model = forecast_strategies(site, plan, params=params).result(
        "local-first/redate/hourly-break")
    broken = hourly_break_profile(site, params.break_minute)
    runner = forecast_strategies(broken, plan_of(broken, plan.phases[0].studies, plan.today),
                                 params=params).chosen
    assert runner.dead_time_hours > 0.1
    assert (runner.hours, runner.dead_time_hours, runner.lockups) == (
        model.hours, model.dead_time_hours, model.lockups)
    starts = recorded_starts(broken, plan_of(broken, plan.phases[0].studies, plan.today),
                             Strategy("local-first", True), params, datetime(2026, 11, 27))
    assert max(when.minute for when in starts) < 50
