"""The throttle in force now and the schedule's next change, as `plan` and `status` show it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from runner.plan.model import Slot
from runner.plan.schedule import schedule_now

LONDON = ZoneInfo("Europe/London")
DAYTIME = Slot(("mon", "tue", "wed", "thu", "fri"), (7 * 60, 19 * 60), "gentle")
NIGHT = Slot(None, None, "overnight")


def test_now_and_the_next_change_within_the_week() -> None:
    now = schedule_now((DAYTIME, NIGHT), datetime(2026, 12, 4, 18, 30, tzinfo=LONDON))  # Fri
    assert (now.throttle, now.next_throttle) == ("gentle", "overnight")
    assert now.next_at == datetime(2026, 12, 4, 19, 0, tzinfo=LONDON)
    assert now.line() == ("Throttle in force now (Fri 2026-12-04 18:30): gentle; next change "
                          "Fri 2026-12-04 19:00: overnight")
    weekend = schedule_now((DAYTIME, NIGHT), datetime(2026, 12, 5, 12, 0, tzinfo=LONDON))
    assert weekend.throttle == "overnight"
    assert weekend.next_at == datetime(2026, 12, 7, 7, 0, tzinfo=LONDON)  # Monday 07:00


def test_a_schedule_that_never_changes_and_a_pause() -> None:
    always = schedule_now((NIGHT,), datetime(2026, 12, 4, 9, 0, tzinfo=LONDON))
    assert always.line().endswith("overnight; the schedule does not change it")
    paused = schedule_now((DAYTIME,), datetime(2026, 12, 4, 20, 0, tzinfo=LONDON))
    assert paused.throttle is None
    assert "none (paused: no schedule entry matches)" in paused.line()
    assert paused.next_throttle == "gentle"
