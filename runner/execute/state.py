"""The run's working state, shared by its stages under one lock: the studies (`StudyWork`),
the per-device queues of studies waiting for a retrieve, the counters and the tally; and the
transitions of a study that more than one stage makes (settle, give up, try again later).

Every fact goes to the ledger's single writer after the side effect it names: a study is
recorded failed once it is given up here, never before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from runner.execute.delayqueue import Backoff
from runner.execute.progress import Tally
from runner.execute.work import DeviceQueues, Stage, StudyWork
from runner.ledger import Ledger, StudyStatus


@dataclass
class Counters:
    """Totals for the progress display, the summary and the spool's back-pressure."""

    received: int = 0
    received_bytes: int = 0
    forwarded: int = 0
    set_aside: int = 0
    refused: int = 0
    discarded: int = 0
    started_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a study is retrieved before it is given up, and the waits between."""

    retrieve_attempts: int
    backoff: Backoff


class RunState:
    """What the stages share: `lock` guards everything here; `wake` (on the same lock) wakes
    the scheduler when a study changes stage; `stopping` and `fatal` end the run."""

    def __init__(self, works: list[StudyWork], phases: list[str], devices: Iterable[str],
                 ledger: Ledger, retry: RetryPolicy, shared_phases: bool = False) -> None:
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.works = {w.uid: w for w in works}
        self.tally = Tally(works, phases)
        self.queues = DeviceQueues(devices, shared_phases)
        self.counters = Counters()
        self.stopping = threading.Event()
        self.fatal: str | None = None
        self.ledger = ledger
        self.retry = retry
        for work in works:
            if not work.final and work.stage is Stage.QUEUED:
                self.queues.push(work)

    def add(self, work: StudyWork, rank: int | None = None) -> None:
        """A study joins the run, queued (in the priority lane, `rank` first, if given)."""
        self.works[work.uid] = work
        self.tally.add(work)
        if rank is not None:
            self.queues.prioritise(work, queued=False, rank=rank)
        self.queues.push(work, time.monotonic())
        self.wake.notify_all()

    def finished(self) -> bool:
        """Every study settled, or the run is to stop."""
        return self.stopping.is_set() or bool(self.fatal) or self.tally.open == 0

    def settle(self, work: StudyWork, stage: Stage) -> None:
        """The study is verified or given up: it leaves the run's open work."""
        if not work.final:
            work.stage = stage
            self.tally.settle(work)

    def give_up(self, work: StudyWork, reason: str) -> None:
        """Give the study up (failed, as the reconciliation, `status` and the report call it)."""
        self.settle(work, Stage.FAILED)
        work.reason = reason
        self.ledger.record_study_status(work.uid, StudyStatus.FAILED, reason)

    def retry_or_give_up(self, work: StudyWork, reason: str) -> None:
        """Queue the study for another retrieve after its backoff, unless its attempts are
        spent."""
        work.reason = reason
        if work.retrieves < self.retry.retrieve_attempts:
            work.stage = Stage.QUEUED
            work.not_before = time.monotonic() + self.retry.backoff.after(work.retrieves)
            self.queues.push(work, time.monotonic())
            return
        self.give_up(work, reason)

    def requeue(self, work: StudyWork) -> None:
        """Queue the study again at once (its retrieve was lost to device trouble)."""
        work.stage = Stage.QUEUED
        self.queues.push(work, time.monotonic())
