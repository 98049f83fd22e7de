"""The throttle in force now and its next change, as plan and status show it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from runner.execute.throttle import schedule_now_and_next
from runner.plan.model import Slot

LONDON = ZoneInfo("Europe/London")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
SCHEDULE = (Slot(WEEKDAYS, (8 * 60, 18 * 60), "standard"), Slot(None, None, "overnight"))


def test_friday_evening_runs_overnight_until_monday_morning() -> None:
    friday = datetime(2026, 12, 4, 20, 6, tzinfo=LONDON)
    assert schedule_now_and_next(SCHEDULE, None, friday) == \
        "overnight now (Fri 20:06); from Mon 2026-12-07 08:00: standard"


def test_a_weekday_morning_changes_at_six_in_the_evening() -> None:
    monday = datetime(2026, 12, 7, 9, 30, tzinfo=LONDON)
    assert schedule_now_and_next(SCHEDULE, None, monday).endswith(
        "from Mon 2026-12-07 18:00: overnight")


def test_a_pinned_device_never_changes() -> None:
    assert schedule_now_and_next(SCHEDULE, "gentle", datetime(2026, 12, 7, tzinfo=LONDON)) \
        == "gentle (pinned)"


def test_a_gap_in_the_schedule_is_a_pause() -> None:
    day_only = (Slot(None, (8 * 60, 18 * 60), "standard"),)
    evening = datetime(2026, 12, 7, 19, 0, tzinfo=LONDON)
    assert schedule_now_and_next(day_only, None, evening).startswith(
        "paused (no schedule entry matches) now (Mon 19:00); from Tue 2026-12-08 08:00: "
        "standard")
