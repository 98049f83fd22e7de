"""The retrieves in flight: each C-MOVE the scheduler started, found by its message id or
study (which store belongs to which retrieve), with what the runner's listener refused
meanwhile and the spool bytes it is still expected to bring.

Changed under the run's lock (`RunState.lock`) by the scheduler, read by intake.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from runner.dicom.listener import IncomingStore
from runner.dicom.move import MoveHandle, MoveOutcome, MoveProgress
from runner.ledger import RetrievePurpose
from runner.plan.throttle import ThroughputMeter

_MAX_NOTES = 3  # listener refusals kept per retrieve (the same few repeat)


@dataclass
class Retrieve:
    """A C-MOVE in flight: which study, on which device, why, and its message id."""

    retrieve_id: str
    study_uid: str
    device: str
    purpose: RetrievePurpose
    msg_id: int
    started: float
    last_progress: float
    received: int = 0
    received_bytes: int = 0
    handle: MoveHandle = field(default_factory=MoveHandle)
    counts: MoveProgress | None = None
    listener_notes: list[str] = field(default_factory=list)  # what our listener refused
    reserved: int = 0  # spool bytes still expected from this retrieve (back-pressure)
    spool_refused: int = 0  # stores our own listener refused for a full spool meanwhile
    meter: ThroughputMeter = field(default_factory=ThroughputMeter)  # its device's
    recall_allowance: float = 0.0  # seconds it may wait before any data moves (a recall)
    moving: bool = False  # an instance arrived, or sub-operations were counted done

    def note(self, text: str) -> None:
        """Something the runner's own listener refused while this retrieve was in flight."""
        if text not in self.listener_notes and len(self.listener_notes) < _MAX_NOTES:
            self.listener_notes.append(text)

    def explained(self, outcome: MoveOutcome) -> str:
        """The source's answer, and next to it what the runner's listener refused (when the
        retrieve did not bring everything): a 0xC000 or failed sub-operations are often
        the listener's doing, not the source's."""
        if not self.listener_notes or (outcome.ok and not outcome.failed):
            return outcome.detail
        return f"{outcome.detail}; the runner's listener {'; '.join(self.listener_notes)}"

    def progressed(self, progress: MoveProgress | None = None) -> None:
        """An instance arrived, or a pending response with new counts: not stalled.

        A pending response that repeats the last counts is not progress: a source that
        answers "pending" forever without moving anything is stalled all the same.
        """
        if progress is not None:
            if progress == self.counts:
                return
            self.counts = progress
            self.moving = self.moving or any((progress.completed, progress.failed,
                                              progress.warning))
        else:
            self.moving = True
        self.last_progress = time.monotonic()

    def stalled(self, now: float, stall_timeout: float) -> float | None:
        """The seconds without progress when that is a stall, else None.

        Before any data moves (no instance, no sub-operation counted done: a first pending
        response only announces the work), a retrieve may be waiting for its study's recall
        from nearline: it is a stall only past `recall_allowance` (when longer than
        `stall_timeout`). Once data moved, `stall_timeout` holds.
        """
        idle = now - self.last_progress
        limit = stall_timeout if self.moving else max(stall_timeout, self.recall_allowance)
        return idle if idle > limit else None


class InFlight:
    """The retrieves in flight, by C-MOVE message id and by study; and the instances a
    study's conflicts resolved by `skip` (the destination's copy stands for them)."""

    def __init__(self, storing_aes: Mapping[str, frozenset[str]], calling_ae: str) -> None:
        self.storing_aes = storing_aes  # device -> the AE titles it may store from
        self.calling_ae = calling_ae  # the runner's, as Move Originator
        self.by_msg_id: dict[int, Retrieve] = {}
        self.by_study: dict[str, Retrieve] = {}
        self.skipped: dict[str, dict[str, str]] = {}  # study -> SOP UIDs kept as held, why
        self._next_msg_id = 0

    def __iter__(self) -> Iterator[Retrieve]:
        return iter(list(self.by_msg_id.values()))

    def __len__(self) -> int:
        return len(self.by_msg_id)

    def next_msg_id(self) -> int:
        """A C-MOVE message id no retrieve in flight uses."""
        for _ in range(0xFFFF):
            self._next_msg_id = self._next_msg_id % 0xFFFF + 1
            if self._next_msg_id not in self.by_msg_id:
                return self._next_msg_id
        raise RuntimeError("no free C-MOVE message id")

    def add(self, retrieve: Retrieve) -> None:
        """A retrieve started."""
        self.by_msg_id[retrieve.msg_id] = retrieve
        self.by_study[retrieve.study_uid] = retrieve

    def remove(self, retrieve: Retrieve) -> None:
        """A retrieve ended (a re-date may overlap a move of the same study: only its own)."""
        self.by_msg_id.pop(retrieve.msg_id, None)
        if self.by_study.get(retrieve.study_uid) is retrieve:
            del self.by_study[retrieve.study_uid]

    def reserved_bytes(self) -> int:
        """The spool bytes the migration retrieves in flight are still expected to bring."""
        return sum(r.reserved for r in self.by_msg_id.values()
                   if r.purpose is RetrievePurpose.MIGRATE)

    def owner_of(self, incoming: IncomingStore) -> Retrieve | None:
        """The retrieve in flight an incoming store belongs to: by Move Originator Message
        ID, else by study; only from the device it was sent to (its calling AE), and only
        for a move the runner originated (Move Originator AE title, when given: the runner's
        calling AE, or the storing device's own, as pynetdicom-based archives send)."""
        by_id = self.by_msg_id.get(incoming.move_originator_msg_id or -1)
        retrieve = by_id if by_id is not None and by_id.study_uid == incoming.study_uid \
            else self.by_study.get(incoming.study_uid)
        if retrieve is None:
            return None
        storing = self.storing_aes.get(retrieve.device, frozenset())
        if incoming.calling_ae not in storing:
            return None
        originator = incoming.move_originator_ae
        if originator and originator != self.calling_ae and originator not in storing:
            return None  # a move someone else asked for (pynetdicom names itself: allowed)
        return retrieve

    def note_listener(self, calling_ae: str, text: str, spool_full: bool = False) -> None:
        """Note `text` on the retrieves in flight on devices whose AE title is `calling_ae`
        (on every retrieve in flight when none is: a source may store under another title);
        `spool_full`: the runner's own spool refused it, so the retrieve is not the study's
        or the device's failure."""
        retrieves = list(self.by_msg_id.values())
        mine = [r for r in retrieves
                if calling_ae in self.storing_aes.get(r.device, ())] or retrieves
        for retrieve in mine:
            retrieve.note(f"{text} (from {calling_ae})")
            retrieve.spool_refused += spool_full
