"""Throttle decisions, pure: which throttle is in force, and when the next retrieve may start.

The rule for one device, with the throttle in force:
- never more than `max_concurrent` retrieves in flight;
- while fewer than `min_concurrent` are in flight, a new retrieve starts at once;
- above that, a new retrieve starts `delay_seconds` (the formula, evaluated for the study
  about to be retrieved with live values) after the previous retrieve on the device started.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from runner.plan.model import ThrottleSetting
from runner.plan.schedule import slot_matches, throttle_in_force
from runner.profile.formula import Formula, parse_formula

__all__ = ["MAX_DELAY_SECONDS", "CompiledThrottle", "Gate", "ThroughputMeter", "next_start",
           "slot_matches", "throttle_in_force"]

# The longest delay any formula may ask for; undefined results (x / 0) also wait this long.
MAX_DELAY_SECONDS = 3600.0


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
