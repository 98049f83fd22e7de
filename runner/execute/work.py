"""The run's working state: each study's progress, and the per-device queues in plan order.

Shared by the run's stages through `runner.execute.state.RunState`, changed only under its lock.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from runner.inventory.model import Study


class Stage(StrEnum):
    """Where a study is in this run."""

    QUEUED = "queued"          # waiting for a device (or for its backoff to pass)
    RETRIEVING = "retrieving"  # a C-MOVE is in flight
    FORWARDING = "forwarding"  # retrieve finished; instances still being sent
    VERIFYING = "verifying"    # waiting for, or in, a check at the destination
    VERIFIED = "verified"
    INCOMPLETE = "incomplete"  # given up with some instances at the destination
    FAILED = "failed"          # given up with none


FINAL_STAGES = frozenset({Stage.VERIFIED, Stage.INCOMPLETE, Stage.FAILED})


@dataclass(frozen=True, slots=True)
class Copy:
    """An instance of the study as received into the spool."""

    series_uid: str
    sop_class_uid: str
    transfer_syntax: str
    spool_name: str


@dataclass
class Instances:
    """What a study has of its instances; made when the study is first worked on."""

    received: dict[str, Copy] = field(default_factory=dict)
    forwarded: set[str] = field(default_factory=set)
    forwarding: set[str] = field(default_factory=set)
    dest_uids: dict[str, str] = field(default_factory=dict)
    set_aside: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[int, str]] = field(default_factory=dict)  # expected at destination


@dataclass(slots=True)
class StudyWork:
    """One study's progress in this run (small until worked on: a plan may hold millions)."""

    study: Study
    phase: int
    order: int
    device: str
    expected: int | None
    stage: Stage = Stage.QUEUED
    retrieves: int = 0
    troubles: int = 0  # retrieves lost to device trouble (not counted in `retrieves`)
    spool_refunds: int = 0  # retrieves lost to the runner's own full spool (not counted)
    # (series, SOP Instance UID) of the only instances the next retrieve needs: a repair
    # by image-level C-MOVE (empty: the whole study is retrieved)
    repair: tuple[tuple[str, str], ...] = ()
    verifications: int = 0
    not_before: float = 0.0
    reason: str = ""
    _instances: Instances | None = None

    @property
    def touched(self) -> bool:
        """Whether anything is known of the study's instances yet."""
        return self._instances is not None

    @property
    def instances(self) -> Instances:
        """The study's instances, made on first use."""
        if self._instances is None:
            self._instances = Instances()
        return self._instances

    @property
    def received(self) -> dict[str, Copy]:
        """Received instances (source SOP UID -> spooled copy)."""
        return self.instances.received

    @property
    def forwarded(self) -> set[str]:
        """Instances the destination acknowledged."""
        return self.instances.forwarded

    @property
    def forwarding(self) -> set[str]:
        """Instances received and not yet forwarded or set aside."""
        return self.instances.forwarding

    @property
    def dest_uids(self) -> dict[str, str]:
        """Source -> destination SOP UID, where rules changed it."""
        return self.instances.dest_uids

    @property
    def set_aside(self) -> dict[str, str]:
        """Instances given up, with the reason."""
        return self.instances.set_aside

    @property
    def values(self) -> dict[str, dict[int, str]]:
        """Values the rules made, to check at the destination."""
        return self.instances.values

    @property
    def uid(self) -> str:
        """The StudyInstanceUID."""
        return self.study.study_uid

    @property
    def megabytes(self) -> float:
        """Planned size in MB."""
        return self.study.estimated_mb

    @property
    def final(self) -> bool:
        """Verified or given up."""
        return self.stage in FINAL_STAGES

    def settled(self) -> bool:
        """Every received instance has been forwarded or set aside."""
        return self._instances is None or not self._instances.forwarding


class DeviceQueues:
    """Studies waiting for a retrieve, one heap per device in plan order.

    A device takes its own studies first; when it has none it takes the next study of the
    device with the most waiting (any device of the source can serve any study). A study
    sent back with a backoff waits in `delayed` until its time comes.

    `shared` (devices that front one archive, `source.balance_devices`): the phases are the
    archive's, not each device's. A device takes a study of the earliest phase still waiting
    (queued or delayed), its own or another's, and none of a later phase before that one is
    through: a device left alone (its partner locked up) must not recall nearline studies
    that push off the local ones still waiting for its partner.
    """

    def __init__(self, devices: Iterable[str], shared: bool = False) -> None:
        self.heaps: dict[str, list[tuple[int, int, str]]] = {d: [] for d in devices}
        self.delayed: list[tuple[float, int, int, str, str]] = []
        self.shared = shared

    def push(self, work: StudyWork, now: float = 0.0) -> None:
        """Queue a study on its planned device (after `work.not_before` if that is later)."""
        if work.not_before > now:
            heapq.heappush(self.delayed, (work.not_before, work.phase, work.order, work.uid,
                                          work.device))
        else:
            heapq.heappush(self.heaps[work.device], (work.phase, work.order, work.uid))

    def release(self, now: float) -> float | None:
        """Move studies whose backoff has passed back to their queue; the next release time."""
        while self.delayed and self.delayed[0][0] <= now:
            _, phase, order, uid, device = heapq.heappop(self.delayed)
            heapq.heappush(self.heaps[device], (phase, order, uid))
        return self.delayed[0][0] if self.delayed else None

    def peek(self, device: str, usable: set[str]) -> str | None:
        """The study `device` should take next (own first, else stolen), or None."""
        first = self._first_phase() if self.shared else None
        own = self.heaps[device]
        if own and (first is None or own[0][0] == first):
            return own[0][2]
        donors = [d for d in self.heaps if d != device and self.heaps[d]
                  and (first is None or self.heaps[d][0][0] == first)]
        if not donors:
            return None
        donor = max(donors, key=lambda d: (d not in usable, len(self.heaps[d])))
        return self.heaps[donor][0][2]

    def _first_phase(self) -> int | None:
        """The earliest phase of a study waiting, queued or delayed."""
        heads = [heap[0][0] for heap in self.heaps.values() if heap]
        return min((*heads, *(entry[1] for entry in self.delayed)), default=None)

    def pop(self, uid: str) -> None:
        """Take the study `peek` returned off its queue."""
        for heap in self.heaps.values():
            if heap and heap[0][2] == uid:
                heapq.heappop(heap)
                return
        raise KeyError(uid)

    def __len__(self) -> int:
        return sum(len(h) for h in self.heaps.values()) + len(self.delayed)
