"""The run's working state: each study's progress, and the per-device queues in plan order.

Shared by the run's stages through `runner.execute.state.RunState`, changed only under its lock.
"""

from __future__ import annotations

import heapq
import itertools
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
    """Studies waiting for a retrieve, one heap per device in plan order, and ahead of them
    the priority lane: studies a priority request asked for, first come first served.

    A device takes a study of the lane first (its own, else another device's), then its own
    studies; when it has none it takes the next study of the device with the most waiting
    (any device of the source can serve any study). A study sent back with a backoff waits
    in `delayed` until its time comes, then goes back to the lane or its heap.

    `shared` (devices that front one archive, `source.balance_devices`): the phases are the
    archive's, not each device's. A device takes a study of the earliest phase still waiting
    (queued or delayed), its own or another's, and none of a later phase before that one is
    through: a device left alone (its partner locked up) must not recall nearline studies
    that push off the local ones still waiting for its partner. The lane goes before phases.
    """

    def __init__(self, devices: Iterable[str], shared: bool = False) -> None:
        self.heaps: dict[str, list[tuple[int, int, str]]] = {d: [] for d in devices}
        # (rank, arrival, uid): the earliest due first, then first come first served
        self.lane: dict[str, list[tuple[int, int, str]]] = {d: [] for d in self.heaps}
        self.ranks: dict[str, int] = {}  # study of the lane -> its rank
        self.delayed: list[tuple[float, int, int, str, str]] = []
        self.shared = shared
        self._left: set[str] = set()  # studies gone to the lane, still in a plan heap
        self._delayed: set[str] = set()  # the studies in `delayed`
        self._arrivals = itertools.count()

    def push(self, work: StudyWork, now: float = 0.0) -> None:
        """Queue a study on its planned device (after `work.not_before` if that is later);
        a study of the lane goes back to the lane."""
        if work.not_before > now:
            heapq.heappush(self.delayed, (work.not_before, work.phase, work.order, work.uid,
                                          work.device))
            self._delayed.add(work.uid)
        else:
            self._enqueue(work.uid, work.phase, work.order, work.device)

    @property
    def urgent(self) -> set[str]:
        """The studies of the lane (queued, delayed or in flight)."""
        return set(self.ranks)

    def prioritise(self, work: StudyWork, now: float = 0.0, queued: bool = True,
                   rank: int = 0) -> bool:
        """Put a study in the lane (once), `rank` first (a due date's ordinal: the earliest
        due goes first): at once if it is waiting in its heap (`queued`), when its backoff
        is released if it is delayed, at its next queueing otherwise (in flight; or a study
        that joins the run, queued by `push`). False if it was in the lane already."""
        if work.uid in self.ranks:
            return False
        self.ranks[work.uid] = rank
        if queued and work.uid not in self._delayed:  # in its plan heap: the lane takes it
            self._left.add(work.uid)
            self._enqueue(work.uid, work.phase, work.order, work.device)
        return True

    def release(self, now: float) -> float | None:
        """Move studies whose backoff has passed back to their queue; the next release time."""
        while self.delayed and self.delayed[0][0] <= now:
            _, phase, order, uid, device = heapq.heappop(self.delayed)
            self._delayed.discard(uid)
            self._enqueue(uid, phase, order, device)
        return self.delayed[0][0] if self.delayed else None

    def _enqueue(self, uid: str, phase: int, order: int, device: str) -> None:
        rank = self.ranks.get(uid)
        if rank is not None:
            heapq.heappush(self.lane[device], (rank, next(self._arrivals), uid))
        else:
            heapq.heappush(self.heaps[device], (phase, order, uid))

    def peek(self, device: str, usable: set[str]) -> str | None:
        """The study `device` should take next (the lane's, own first, else stolen), or
        None."""
        urgent = self._lane_head(device, usable)
        if urgent is not None:
            return urgent
        for heap in self.heaps.values():
            self._drop_left(heap)
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

    def _lane_head(self, device: str, usable: set[str]) -> str | None:
        """The lane's next study for `device`: its own, else the longest-waiting of another
        device's (one not usable first)."""
        if self.lane[device]:
            return self.lane[device][0][2]
        heads = [(d in usable, heap[0]) for d, heap in self.lane.items() if heap]
        return min(heads)[1][2] if heads else None

    def _drop_left(self, heap: list[tuple[int, int, str]]) -> None:
        """Drop the heap's head while it is a study that went to the lane."""
        while heap and heap[0][2] in self._left:
            self._left.discard(heapq.heappop(heap)[2])

    def _first_phase(self) -> int | None:
        """The earliest phase of a study waiting, queued or delayed."""
        heads = [heap[0][0] for heap in self.heaps.values() if heap]
        return min((*heads, *(entry[1] for entry in self.delayed
                              if entry[3] not in self.ranks)), default=None)

    def pop(self, uid: str) -> None:
        """Take the study `peek` returned off its queue."""
        for lane in self.lane.values():
            if lane and lane[0][2] == uid:
                heapq.heappop(lane)
                return
        for heap in self.heaps.values():
            if heap and heap[0][2] == uid:
                heapq.heappop(heap)
                return
        raise KeyError(uid)

    def lane_waiting(self) -> int:
        """Studies waiting in the lane."""
        return sum(len(lane) for lane in self.lane.values())

    def __len__(self) -> int:
        return (sum(len(h) for h in self.heaps.values()) - len(self._left)
                + self.lane_waiting() + len(self.delayed))
