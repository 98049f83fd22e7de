"""One source device in the tier model's simulation: its queue, transfers sharing its rate."""

from __future__ import annotations

from runner.plan.throttle import ThroughputMeter
from runner.tiering.scenario import DeviceLimits


class ModelDevice:
    """One source device during the simulation: its queue and what is in flight.

    Transfers share the device's rate (each at most `per_retrieve` MB/s): `served` is the
    MB each transfer in `active` has received since the device's start, and a transfer ends
    when `served` reaches its threshold in `active`. Studies being recalled wait in
    `recalling` (their size). `epoch` changes at a lock-up, `version` whenever the next end
    must be scheduled again: older events are ignored.
    """

    __slots__ = ("active", "epoch", "flight", "fruitless", "in_flight", "index", "last_start",
                 "limits", "locked_seconds", "locked_until", "lockups", "meter", "per_retrieve",
                 "pinned", "position", "queue", "recalling", "retry", "served", "updated",
                 "version", "wake_at")

    def __init__(self, index: int, pinned: str | None, queue: list[int], limits: DeviceLimits,
                 per_retrieve: float) -> None:
        self.index = index
        self.pinned = pinned
        self.queue = queue
        self.position = 0
        self.retry: list[int] = []  # studies lost to a lock-up, asked again first
        self.in_flight = 0
        self.last_start: float | None = None
        self.wake_at = -1.0
        self.meter = ThroughputMeter()
        self.limits = limits
        self.per_retrieve = per_retrieve
        self.active: dict[int, float] = {}
        self.recalling: dict[int, float] = {}
        self.flight: dict[int, None] = {}  # every study in flight, in the order started
        self.served = 0.0
        self.updated = 0.0
        self.epoch = 0
        self.version = 0
        self.locked_until = -1.0
        self.lockups = 0
        self.fruitless = 0  # lock-ups since a study last finished on the device
        self.locked_seconds = 0.0

    @property
    def has_work(self) -> bool:
        """Whether any study is still to be started on this device."""
        return bool(self.retry) or self.position < len(self.queue)

    def waiting(self) -> int:
        """How many studies are still to be started on this device."""
        return len(self.retry) + len(self.queue) - self.position

    def next_key(self) -> int:
        """The study to start next: one lost to a lock-up first, else the queue's next."""
        return self.retry[0] if self.retry else self.queue[self.position]

    def take(self) -> None:
        """The next study has started."""
        if self.retry:
            self.retry.pop(0)
        else:
            self.position += 1

    def rate(self) -> float:
        """MB/s each transfer receives now."""
        if not self.active:
            return 0.0
        return min(self.per_retrieve, self.limits.mb_per_s / len(self.active))

    def advance(self, now: float) -> None:
        """Bring `served` up to `now`."""
        self.served += self.rate() * (now - self.updated)
        self.updated = now

    def backlog(self) -> float:
        """MB asked of the device and not yet delivered."""
        return sum(self.active.values()) - self.served * len(self.active) + \
            sum(self.recalling.values())
