"""The schedule as time goes by, pure: which throttle is in force at a moment, and when the
next change comes (for `plan` and `status`; the engine asks `throttle_in_force` live)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from runner.plan.model import Slot

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LOOK_AHEAD_MINUTES = 8 * 24 * 60  # a weekly schedule changes within a week, or never


def slot_matches(slot: Slot, when: datetime) -> bool:
    """Whether a schedule entry covers `when` (a time in the site's zone).

    Hours that wrap past midnight (20:00-06:00) belong to the day on which they start.
    """
    day = _WEEKDAYS[when.weekday()]
    minute = when.hour * 60 + when.minute
    if slot.minutes is None:
        return slot.days is None or day in slot.days
    start, end = slot.minutes
    if start < end:
        return (slot.days is None or day in slot.days) and start <= minute < end
    if minute >= start:
        return slot.days is None or day in slot.days
    if minute < end:
        yesterday = _WEEKDAYS[(when.weekday() - 1) % 7]
        return slot.days is None or yesterday in slot.days
    return False


def throttle_in_force(slots: Sequence[Slot], pinned: str | None, when: datetime) -> str | None:
    """The throttle for a device at `when`: its pinned one, else the first matching slot.

    None means no entry matches: the device is paused (no new retrieve starts).
    """
    if pinned is not None:
        return pinned
    return next((s.throttle for s in slots if slot_matches(s, when)), None)


@dataclass(frozen=True, slots=True)
class ScheduleNow:
    """The throttle in force at `at` and the next change (None: the schedule never changes)."""

    at: datetime
    throttle: str | None
    next_at: datetime | None
    next_throttle: str | None

    def line(self) -> str:
        """In words, for `plan` and `status`."""
        now = self.throttle or "none (paused: no schedule entry matches)"
        text = f"Throttle in force now ({self.at:%a %Y-%m-%d %H:%M}): {now}"
        if self.next_at is None:
            return text + "; the schedule does not change it"
        then = self.next_throttle or "none (paused)"
        return text + f"; next change {self.next_at:%a %Y-%m-%d %H:%M}: {then}"


def schedule_now(slots: Sequence[Slot], at: datetime) -> ScheduleNow:
    """The throttle in force at `at` (site-local time) and when the schedule next changes."""
    start = at.replace(second=0, microsecond=0)
    current = throttle_in_force(slots, None, start)
    for minute in range(1, _LOOK_AHEAD_MINUTES):
        when = start + timedelta(minutes=minute)
        later = throttle_in_force(slots, None, when)
        if later != current:
            return ScheduleNow(at, current, when, later)
    return ScheduleNow(at, current, None, None)
