"""Throttle decisions, pure: which throttle is in force, and when the next retrieve may start.

The rule for one device, with the throttle in force:
- never more than `max_concurrent` retrieves in flight;
- while fewer than `min_concurrent` are in flight, a new retrieve starts at once;
- above that, a new retrieve starts `delay_seconds` (the formula, evaluated for the study
  about to be retrieved with live values) after the previous retrieve on the device started.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from runner.plan.model import Slot, ThrottleSetting
from runner.profile.formula import Formula, parse_formula

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# The longest delay any formula may ask for; undefined results (x / 0) also wait this long.
MAX_DELAY_SECONDS = 3600.0


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
class CompiledThrottle:
    """A throttle with its delay formula parsed once."""

    name: str
    max_concurrent: int
    min_concurrent: int
    delay: Formula

    @classmethod
    def of(cls, setting: ThrottleSetting) -> CompiledThrottle:
        """Compile a plan's throttle setting."""
        return cls(setting.name, setting.max_concurrent, setting.min_concurrent,
                   parse_formula(setting.delay_seconds))


@dataclass(frozen=True, slots=True)
class Gate:
    """The decision for the next retrieve on a device.

    `wait` is 0 to start now, a number of seconds to wait, or None when the device is at its
    maximum (or paused) and must wait for a retrieve to finish or the schedule to change.
    """

    wait: float | None
    delay: float = 0.0
    reason: str = ""


def next_start(throttle: CompiledThrottle | None, in_flight: int, last_start: float | None,
               now: float, values: Mapping[str, float]) -> Gate:
    """When the next retrieve may start on a device (times are monotonic seconds)."""
    if throttle is None:
        return Gate(None, reason="paused by the schedule")
    if in_flight >= throttle.max_concurrent:
        return Gate(None, reason=f"at maximum ({throttle.max_concurrent} in flight)")
    if in_flight < throttle.min_concurrent:
        return Gate(0.0, reason=f"below minimum ({throttle.min_concurrent})")
    delay = throttle.delay.seconds({**values, "in_flight": float(in_flight)},
                                   cap=MAX_DELAY_SECONDS)
    ready = (last_start if last_start is not None else now - delay) + delay
    return Gate(max(0.0, ready - now), delay, reason=f"delay {delay:.1f} s")


class ThroughputMeter:
    """A device's throughput over a sliding window (default 15 minutes), in MB/s."""

    def __init__(self, window_seconds: float = 900.0) -> None:
        self.window = window_seconds
        self.samples: deque[tuple[float, float]] = deque()
        self.total = 0.0
        self.first: float | None = None

    def add(self, now: float, megabytes: float) -> None:
        """Record `megabytes` received at `now`."""
        if self.first is None:
            self.first = now
        self.samples.append((now, megabytes))
        self.total += megabytes
        self._trim(now)

    def mb_per_s(self, now: float) -> float:
        """Average MB/s over the window ending at `now` (0 with no samples)."""
        self._trim(now)
        if not self.samples or self.first is None:
            return 0.0
        return self.total / max(min(self.window, now - self.first), 1.0)

    def _trim(self, now: float) -> None:
        while self.samples and self.samples[0][0] < now - self.window:
            self.total -= self.samples.popleft()[1]


def schedule_now_and_next(slots: Sequence[Slot], pinned: str | None, now: datetime,
                          horizon: timedelta = timedelta(days=8)) -> str:
    """The throttle in force at `now` and when it next changes, in words (site time)."""
    current = throttle_in_force(slots, pinned, now)
    shown = current or "paused (no schedule entry matches)"
    if pinned is not None:
        return f"{shown} (pinned)"
    when = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while when - now <= horizon:
        following = throttle_in_force(slots, pinned, when)
        if following != current:
            return (f"{shown} now ({now:%a %H:%M}); from {when:%a %Y-%m-%d %H:%M}: "
                    f"{following or 'paused'}")
        when += timedelta(minutes=1)
    return f"{shown} now ({now:%a %H:%M}), at all times"
