"""The schedule in simulated time: segments in the site zone, the hourly break, DST, steady."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from runner.plan.model import Slot
from runner.tiering.timeline import ScheduleCursor, Timeline

LONDON = ZoneInfo("Europe/London")
WEEKDAYS = Slot(("mon", "tue", "wed", "thu", "fri"), (8 * 60, 18 * 60), "standard")
OTHERWISE = Slot(None, None, "overnight")


def test_a_segment_ends_where_the_schedule_next_changes() -> None:
    friday = datetime(2026, 11, 27, tzinfo=LONDON)
    timeline = Timeline((WEEKDAYS, OTHERWISE), friday)
    name, end = timeline.segment(17 * 60)
    assert (name, end) == ("standard", 18 * 60)
    name, end = timeline.segment(18 * 60)
    assert name == "overnight"
    assert timeline.local(end * 60) == datetime(2026, 11, 30, 8, 0, tzinfo=LONDON)


def test_segments_follow_the_site_clock_across_a_daylight_saving_change() -> None:
    saturday = datetime(2026, 3, 28, tzinfo=LONDON)  # clocks go forward on Sunday 29th
    timeline = Timeline((Slot(None, (8 * 60, 18 * 60), "day"),), saturday)
    _, end = timeline.segment(20 * 60)  # Saturday evening: paused until Sunday 08:00
    assert timeline.local(end * 60) == datetime(2026, 3, 29, 8, 0, tzinfo=LONDON)
    assert end == (24 + 7) * 60  # 23 real hours in that Sunday: 08:00 comes an hour early


def test_a_schedule_that_never_changes_has_no_end() -> None:
    timeline = Timeline((OTHERWISE,), datetime(2026, 11, 27, tzinfo=LONDON))
    assert timeline.segment(12345) == ("overnight", math.inf)


def test_the_hourly_break_runs_from_minute_50_to_the_hour() -> None:
    origin = datetime(2026, 11, 28, tzinfo=LONDON)
    cursor = ScheduleCursor(Timeline((OTHERWISE,), origin), break_minute=50)
    assert cursor.at(10 * 3600 + 20 * 60)
    assert not cursor.on_break and cursor.end == 10 * 3600 + 50 * 60
    assert not cursor.at(10 * 3600 + 49 * 60)  # same segment
    assert cursor.at(10 * 3600 + 50 * 60)
    assert cursor.on_break and cursor.end == 11 * 3600
    assert cursor.name == "overnight"


def test_a_cursor_without_break_is_never_on_break() -> None:
    origin = datetime(2026, 11, 28, tzinfo=LONDON)
    cursor = ScheduleCursor(Timeline((OTHERWISE,), origin), break_minute=None)
    cursor.at(55 * 60)
    assert not cursor.on_break and cursor.end == math.inf
