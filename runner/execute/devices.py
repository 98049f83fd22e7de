"""The health and load of each source device during a run: in flight, throughput, down/up.

A device whose retrieves fail `down_after` times in a row (transport failures, out of
resources, stalls) is marked down: its work goes to the other devices, and it is probed with
C-ECHO, first after `probe_seconds`, then doubling up to `probe_max_seconds`, until it
answers and is brought back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.dicom.move import MoveOutcome
from runner.dicom.peer import Peer
from runner.dicom.status import StatusCategory
from runner.plan.throttle import ThroughputMeter
from runner.profile.models import Health

# Outcomes that say something about the device itself, not about one study.
_DEVICE_TROUBLE = frozenset({StatusCategory.ABORTED, StatusCategory.TIMEOUT,
                             StatusCategory.NO_ASSOCIATION, StatusCategory.OUT_OF_RESOURCES})


def is_device_trouble(outcome: MoveOutcome) -> bool:
    """Whether a failed retrieve says the device is in trouble (not the study)."""
    return outcome.category in _DEVICE_TROUBLE


@dataclass
class DeviceState:
    """One source device as the dispatcher sees it."""

    id: str
    peer: Peer
    pinned: str | None
    health: Health
    in_flight: int = 0
    last_start: float | None = None
    failures: int = 0
    down: bool = False
    probing: bool = False
    next_probe: float = 0.0
    probe_wait: float = 0.0
    throttle: str | None = "?"
    meter: ThroughputMeter = field(default_factory=ThroughputMeter)

    def usable(self) -> bool:
        """Whether new retrieves may go to this device."""
        return not self.down

    def started(self, now: float) -> None:
        """A retrieve started on this device."""
        self.in_flight += 1
        self.last_start = now

    def finished(self, outcome: MoveOutcome, now: float) -> bool:
        """A retrieve ended; True when this failure marks the device down."""
        self.in_flight -= 1
        if not is_device_trouble(outcome):
            self.failures = 0
            return False
        self.failures += 1
        if self.failures < self.health.down_after or self.down:
            return False
        self.down = True
        self.probe_wait = self.health.probe_seconds
        self.next_probe = now + self.probe_wait
        return True

    def probe_due(self, now: float) -> bool:
        """Whether to send a C-ECHO probe now (the caller then calls `probed`)."""
        return self.down and not self.probing and now >= self.next_probe

    def probed(self, answered: bool, now: float) -> bool:
        """The probe's answer; True when the device is back."""
        self.probing = False
        if answered:
            self.down = False
            self.failures = 0
            return True
        self.probe_wait = min(self.probe_wait * 2, self.health.probe_max_seconds)
        self.next_probe = now + self.probe_wait
        return False
