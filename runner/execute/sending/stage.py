"""The sending stage: what intake spooled is forwarded (the `Forwarder` and the senders the
caller picked); each attempt is recorded, then the instance is marked forwarded or set
aside; a study whose every instance is settled is handed to settlement; a forwarded
instance gives its space back (`Holding`: at once in the memory spool; from the spool once
the ledger holds its forward, the janitor). One held in memory is spilled to the spool when
it must wait: before a retry, when set aside, and when the run ends before it was sent.

Owns the forwarder's threads and the janitor's sweeper: `start`, `close`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from runner.execute.delayqueue import Backoff
from runner.execute.sending.forwarder import Forwarder
from runner.execute.sending.holding import Holding
from runner.execute.sending.janitor import Sweeper
from runner.execute.sending.seam import ForwardItem, ForwardResult, Senders
from runner.execute.state import RunState
from runner.execute.work import StudyWork
from runner.ledger import Ledger


class Settling(Protocol):
    """What sending hands on to settlement."""

    def expected(self, values: Mapping[int, str] | None,
                 source: Callable[[], BinaryIO]) -> dict[int, str] | None:
        """The morphed values to check at the destination for one forwarded instance."""
        ...

    def offer(self, work: StudyWork) -> bool:
        """Queue the study for its check if it is ready; True if it was."""
        ...


@dataclass(frozen=True, slots=True)
class Pool:
    """The forwarder's shape: threads (one association each), tries per instance, waits."""

    associations: int
    attempts: int
    backoff: Backoff
    stop_within: float  # seconds `close` waits for each thread


class Sending:
    """Forwards spooled instances and records each outcome."""

    def __init__(self, state: RunState, ledger: Ledger, senders: Senders, pool: Pool,
                 holding: Holding, settling: Settling) -> None:
        self.state = state
        self.ledger = ledger
        self.holding = holding
        self.settling = settling
        self.forwarder = Forwarder(senders, pool.associations, pool.attempts, pool.backoff,
                                   self.record, pool.stop_within, before_retry=holding.spill)
        self.sweeper = Sweeper(holding.janitor)

    def start(self) -> None:
        """Start the forwarder's threads (and their senders) and the janitor."""
        self.forwarder.start()
        self.sweeper.start()

    def submit(self, item: ForwardItem) -> None:
        """Forward `item` (from intake, or an earlier run's spool)."""
        self.forwarder.submit(item)

    def close(self) -> None:
        """Stop forwarding (what is queued stays spooled for the next run: spilled from
        memory), record the stores already made, and remove the files whose forward the
        ledger now holds."""
        self.forwarder.close()
        for item in self.forwarder.leftover():
            self.holding.spill(item)
        self.sweeper.stop()
        self.holding.janitor.sweep()

    def record(self, result: ForwardResult) -> None:
        """Record a C-STORE attempt; settle the instance when it is final."""
        item, done = result.item, result.transcoded
        self.ledger.record_forwarded(sop_instance_uid=item.sop_instance_uid,
                                     study_uid=item.study_uid, ok=result.ok,
                                     status=result.status, reason=result.reason or None,
                                     dest_sop_instance_uid=result.dest_sop_instance_uid,
                                     transcode=(done.source_syntax, done.sent_syntax,
                                                done.reason) if done else None,
                                     rules_fired=result.fired)
        if not result.final:
            return
        expected = self.settling.expected(result.values, lambda: self.holding.open(item)) \
            if result.ok else None
        if not result.ok:
            self.holding.spill(item)  # kept in the spool, as a set-aside file is
            self.ledger.record_quarantined(sop_instance_uid=item.sop_instance_uid,
                                           study_uid=item.study_uid, reason=result.reason)
        with self.state.lock:
            self._settle_instance(result, expected)
        if result.ok:
            self.holding.release(item)

    def _settle_instance(self, result: ForwardResult, expected: dict[int, str] | None) -> None:
        item, state = result.item, self.state
        work = state.works[item.study_uid]
        work.forwarding.discard(item.sop_instance_uid)
        if result.ok:
            work.forwarded.add(item.sop_instance_uid)
            if expected is not None:
                work.values[item.sop_instance_uid] = expected
            if result.dest_sop_instance_uid:
                work.dest_uids[item.sop_instance_uid] = result.dest_sop_instance_uid
            state.counters.forwarded += 1
        else:
            work.set_aside[item.sop_instance_uid] = result.reason
            state.counters.set_aside += 1
        if self.settling.offer(work) or not result.ok:
            state.wake.notify_all()  # only a change of the study's stage concerns dispatch
