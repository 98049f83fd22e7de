"""The forwarder: spooled instances -> morph -> C-STORE to the destination, with retries.

Up to `associations` worker threads, each holding one long-lived StoreClient (re-opened
when broken). An instance no rule changes is sent as the bytes received, undecoded. A failed
store is tried again with exponential backoff; transient failures (out of resources, lost
association) and permanent ones (refused, cannot understand) both get `store_attempts`
tries, then the instance is set aside with its reason. Results go to the caller's callbacks;
the spool file is removed by the caller once the ledger holds the result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.store import StoreClient, StoreOutcome
from runner.execute.delayqueue import DelayQueue
from runner.morph import RuleSet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ForwardItem:
    """One spooled instance to send."""

    sop_instance_uid: str
    study_uid: str
    sop_class_uid: str
    transfer_syntax: str
    path: Path
    spool_name: str
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """How forwarding one instance ended (for now: `final` False means it will be retried)."""

    item: ForwardItem
    ok: bool
    final: bool
    status: int | None
    reason: str
    dest_sop_instance_uid: str | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts: `first` seconds, doubling, at most `most`."""

    first: float
    most: float

    def after(self, attempt: int) -> float:
        """The wait before attempt number `attempt + 1` (attempt counts from 1)."""
        return float(min(self.most, self.first * 2.0 ** max(0, attempt - 1)))


class Forwarder:
    """Worker threads that forward spooled instances; `submit`, then `close` when done."""

    def __init__(self, destination: Peer, calling_ae: str, settings: DicomSettings,
                 rules: RuleSet, associations: int, attempts: int, backoff: Backoff,
                 on_result: Callable[[ForwardResult], None]) -> None:
        self.destination = destination
        self.calling_ae = calling_ae
        self.settings = settings
        self.rules = rules
        self.attempts = attempts
        self.backoff = backoff
        self.on_result = on_result
        self.queue: DelayQueue[ForwardItem] = DelayQueue()
        self.threads = [threading.Thread(target=self._work, name=f"forward-{i}", daemon=True)
                        for i in range(associations)]

    def start(self) -> Forwarder:
        """Start the worker threads."""
        for thread in self.threads:
            thread.start()
        return self

    def submit(self, item: ForwardItem) -> None:
        """Queue an instance for forwarding."""
        self.queue.put(item)

    def idle(self) -> bool:
        """Nothing queued, waiting for a retry, or being sent."""
        return self.queue.idle()

    def pending(self) -> int:
        """Instances queued or being sent."""
        return len(self.queue)

    def close(self) -> None:
        """Stop the workers (what is still queued stays in the spool for the next run)."""
        self.queue.close()
        for thread in self.threads:
            thread.join(timeout=max(self.settings.dimse_timeout, 5.0))

    def _work(self) -> None:
        client = StoreClient(self.destination, self.calling_ae, self.settings)
        try:
            while (item := self.queue.get()) is not None:
                try:
                    self._forward(client, item)
                except Exception:  # a bug must not silently stop a worker
                    log.exception("forwarding failed unexpectedly")
                    self._finish(item, None, "internal error while forwarding")
                finally:
                    self.queue.done()
        finally:
            client.close()

    def _forward(self, client: StoreClient, item: ForwardItem) -> None:
        item = replace(item, attempt=item.attempt + 1)
        if self.rules.is_empty:
            outcome = client.store_file(item.path, item.sop_class_uid, item.transfer_syntax)
            self._settle(item, outcome, None)
            return
        try:
            ds = dcmread(item.path)
        except (InvalidDicomError, OSError, ValueError) as exc:
            self._finish(item, None, f"spooled file cannot be read: {exc}")
            return
        result = self.rules.apply(ds)
        if not result.ok:
            self._finish(item, None, f"morphing failed: {result.failed}")
            return
        change = result.sop_instance_uid_change
        if not result.fired:
            outcome = client.store_file(item.path, item.sop_class_uid, item.transfer_syntax)
        else:
            outcome = client.store_dataset(ds)
        self._settle(item, outcome, change.destination if change else None)

    def _settle(self, item: ForwardItem, outcome: StoreOutcome, dest_uid: str | None) -> None:
        if outcome.ok:
            self.on_result(ForwardResult(item, True, True, outcome.status, outcome.detail,
                                         dest_uid))
            return
        if item.attempt < self.attempts:
            self.on_result(ForwardResult(item, False, False, outcome.status, outcome.detail))
            self.queue.put(item, self.backoff.after(item.attempt))
            return
        self._finish(item, outcome.status, f"{outcome.detail} (after {item.attempt} attempts)")

    def _finish(self, item: ForwardItem, status: int | None, reason: str) -> None:
        self.on_result(ForwardResult(item, False, True, status, reason))
