"""The schedule in simulated time: which throttle is in force, and until when, in the site zone."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from runner.plan.model import Slot
from runner.plan.throttle import throttle_in_force

# A weekly schedule that has not changed for this long never changes.
_STEADY_MINUTES = 8 * 24 * 60


class Timeline:
    """The schedule's throttle minute by minute from `origin`, found lazily and kept only as
    the minutes where it changes (shared by every simulation of one forecast).

    Simulated time is seconds since `origin` (a whole minute, in the site's zone).
    """

    def __init__(self, slots: Sequence[Slot], origin: datetime) -> None:
        self.slots = tuple(slots)
        self.origin = origin
        self._epoch = origin.timestamp()
        self._starts = [0]
        self._names = [self._name(0)]
        self._scanned = 0
        self._steady = False

    def local(self, seconds: float) -> datetime:
        """The site's wall-clock time at a simulated time."""
        return datetime.fromtimestamp(self._epoch + seconds, self.origin.tzinfo)

    def segment(self, minute: int) -> tuple[str | None, float]:
        """The schedule's throttle at `minute` (None: paused) and the minute it changes
        (math.inf: never)."""
        self._scan_past(minute)
        index = bisect_right(self._starts, minute) - 1
        end = self._starts[index + 1] if index + 1 < len(self._starts) else math.inf
        return self._names[index], end

    def _scan_past(self, minute: int) -> None:
        """Scan until the segment holding `minute` has a known end, or is steady for good."""
        if self._steady or self._starts[-1] > minute:
            return
        limit = max(minute, self._starts[-1]) + _STEADY_MINUTES
        while self._scanned < limit:
            self._scanned += 1
            name = self._name(self._scanned)
            if name != self._names[-1]:
                self._starts.append(self._scanned)
                self._names.append(name)
                if self._scanned > minute:
                    return
        self._steady = True

    def _name(self, minute: int) -> str | None:
        return throttle_in_force(self.slots, None, self.local(minute * 60.0))


@dataclass(slots=True)
class ScheduleCursor:
    """One simulation's view of the timeline: the throttle in force now, whether the hourly
    break holds, and the simulated second at which either may change."""

    timeline: Timeline
    break_minute: int | None
    name: str | None = None
    on_break: bool = False
    end: float = -1.0

    def at(self, now: float) -> bool:
        """Move to `now` (never backwards); True when a new segment was entered."""
        if now < self.end:
            return False
        minute = math.floor(now / 60.0)
        self.name, end_minute = self.timeline.segment(minute)
        self.end = end_minute * 60.0
        if self.break_minute is not None:
            self._apply_break(minute, self.break_minute)
        self.end = max(self.end, (minute + 1) * 60.0)  # nothing changes within a minute
        return True

    def _apply_break(self, minute: int, break_minute: int) -> None:
        of_hour = self.timeline.local(minute * 60.0).minute
        self.on_break = of_hour >= break_minute
        change = 60 - of_hour if self.on_break else break_minute - of_hour
        self.end = min(self.end, (minute + change) * 60.0)
