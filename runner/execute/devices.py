"""The health and load of each source device during a run: in flight, throughput, down/up."""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.dicom.move import MoveOutcome
from runner.dicom.peer import Peer
from runner.execute.throttle import ThroughputMeter
from runner.ledger import EventKind, Ledger

# Consecutive failed retrieves (transport failures, out of resources) that mark a device down.
DOWN_AFTER_FAILURES = 3


@dataclass
class DeviceState:
    """One source device as the dispatcher sees it."""

    id: str
    peer: Peer
    pinned: str | None
    in_flight: int = 0
    last_start: float | None = None
    failures: int = 0
    down: bool = False
    throttle: str | None = "?"
    meter: ThroughputMeter = field(default_factory=ThroughputMeter)

    def usable(self, now: float) -> bool:
        """Whether new retrieves may go to this device."""
        return not self.down

    def started(self, now: float) -> None:
        """A retrieve started on this device."""
        self.in_flight += 1
        self.last_start = now

    def finished(self, outcome: MoveOutcome, now: float, ledger: Ledger) -> None:
        """A retrieve ended; repeated failures of the device itself mark it down."""
        self.in_flight -= 1
        if outcome.ok or not (outcome.category.is_transport
                              or outcome.category == "out_of_resources"):
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= DOWN_AFTER_FAILURES and not self.down:
            self.down = True
            ledger.record_event(EventKind.DEVICE_DOWN, device=self.id,
                                detail={"failures": self.failures, "last": outcome.detail})

    def note_throttle(self, name: str | None, ledger: Ledger) -> None:
        """Record a change of the throttle in force (the schedule moved to another slot)."""
        if name != self.throttle:
            ledger.record_event(EventKind.THROTTLE_CHANGE, device=self.id,
                                detail={"from": self.throttle, "to": name or "paused"})
            self.throttle = name
