"""The forwarder: worker threads that forward spooled instances, with retries.

Up to `associations` worker threads, each driving one `Sender` from the `Senders` the caller
picked (runner.execute.sending.dimse: by default a worker process holding one long-lived
StoreClient). A pipelined sender is handed the next instance before the answer, so it is
read and morphed while the destination stores the current one. A failed store is tried
again with exponential backoff (after `before_retry`: an instance held in memory is moved
to the spool while it waits); transient failures (out of resources, lost association) and
permanent ones (refused, cannot understand) both get `attempts` tries, then the instance is
set aside with its reason. Results go to the caller's callback from one delivery thread;
the spool file is removed by the caller once the ledger holds the result.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from queue import SimpleQueue

from runner.execute.delayqueue import Backoff, DelayQueue
from runner.execute.sending.seam import (
    INTERNAL_ERROR,
    Attempt,
    ForwardItem,
    ForwardResult,
    Pipelined,
    Sender,
    Senders,
)

log = logging.getLogger(__name__)


class Forwarder:
    """Worker threads that forward spooled instances; `submit`, then `close` when done.

    Each thread takes one sender from `senders` when it starts. Results reach `on_result`
    from one delivery thread, so a sender never waits for the caller's bookkeeping before
    taking its next instance. `stop_within`: seconds `close` waits for each thread.
    """

    def __init__(self, senders: Senders, associations: int, attempts: int, backoff: Backoff,
                 on_result: Callable[[ForwardResult], None], stop_within: float = 5.0,
                 before_retry: Callable[[ForwardItem], ForwardItem] = lambda item: item,
                 ) -> None:
        self.senders = senders
        self.before_retry = before_retry
        self.attempts = attempts
        self.backoff = backoff
        self.on_result = on_result
        self.stop_within = stop_within
        self.queue: DelayQueue[ForwardItem] = DelayQueue()
        self.results: SimpleQueue[tuple[ForwardItem, Attempt] | None] = SimpleQueue()
        self.threads = [threading.Thread(target=self._work, name=f"forward-{i}", daemon=True)
                        for i in range(associations)]
        self.delivery = threading.Thread(target=self._deliver, name="forward-results",
                                         daemon=True)

    def start(self) -> Forwarder:
        """Start the worker threads (each starts its sender: a worker process, say)."""
        self.delivery.start()
        for thread in self.threads:
            thread.start()
        return self

    def submit(self, item: ForwardItem) -> None:
        """Queue an instance for forwarding."""
        self.queue.put(item)

    def idle(self) -> bool:
        """Nothing queued, waiting for a retry, being sent, or awaiting delivery."""
        return self.queue.idle()

    def pending(self) -> int:
        """Instances queued, being sent, or awaiting delivery."""
        return len(self.queue)

    def leftover(self) -> list[ForwardItem]:
        """After `close`: what was queued and not sent (taken out of the queue)."""
        return self.queue.drain()

    def close(self) -> None:
        """Stop the workers (what is still queued stays, see `leftover`); results of the
        stores already made are delivered before this returns."""
        self.queue.close()
        for thread in self.threads:
            thread.join(timeout=self.stop_within)
        self.results.put(None)
        self.delivery.join(timeout=self.stop_within)
        self.senders.close()

    def _work(self) -> None:
        sender = self.senders.new()
        try:
            sender.prepare()
            if isinstance(sender, Pipelined) and sender.depth > 1:
                self._pipeline(sender)
                return
            while (item := self.queue.get()) is not None:
                item = replace(item, attempt=item.attempt + 1)
                self.results.put((item, self._send(sender, item)))
        finally:
            sender.close()

    def _pipeline(self, sender: Pipelined) -> None:
        """Keep up to `sender.depth` instances with the sender: wait for the queue only when
        none is out, else take what is ready; results go out in submission order."""
        out: deque[ForwardItem] = deque()
        closed = False
        while out or not closed:
            item = None
            if not closed and len(out) < sender.depth:
                item = self.queue.take_ready() if out else self.queue.get()
                closed = item is None and not out
            if item is not None:
                item = replace(item, attempt=item.attempt + 1)
                try:
                    sender.submit(item)
                except Exception:  # a bug (or no worker can start) must not stop this thread
                    log.exception("handing an instance to its worker failed unexpectedly")
                    self.results.put((item, INTERNAL_ERROR))
                    continue
                out.append(item)
                continue
            if out:
                self.results.put((out.popleft(), self._collect(sender)))

    @staticmethod
    def _send(sender: Sender, item: ForwardItem) -> Attempt:
        try:
            return sender.send(item)
        except Exception:  # a bug must not silently stop a worker
            log.exception("forwarding failed unexpectedly")
            return INTERNAL_ERROR

    @staticmethod
    def _collect(sender: Pipelined) -> Attempt:
        try:
            return sender.collect()
        except Exception:  # a bug must not silently stop a worker
            log.exception("forwarding failed unexpectedly")
            return INTERNAL_ERROR

    def _deliver(self) -> None:
        while (result := self.results.get()) is not None:
            try:
                self._settle(*result)
            except Exception:  # the caller's callback failed: keep delivering the others
                log.exception("recording a forward result failed")
            finally:
                self.queue.done()

    def _settle(self, item: ForwardItem, attempt: Attempt) -> None:
        if attempt.ok:
            self.on_result(ForwardResult(item, True, True, attempt.status, attempt.detail,
                                         attempt.dest_sop_instance_uid, attempt.values,
                                         attempt.transcoded, attempt.fired))
        elif not attempt.retry:
            self._finish(item, attempt.status, attempt.detail)
        elif item.attempt < self.attempts:
            self.on_result(ForwardResult(item, False, False, attempt.status, attempt.detail))
            self.queue.put(self.before_retry(item), self.backoff.after(item.attempt))
        else:
            self._finish(item, attempt.status, f"{attempt.detail} (after {item.attempt} attempts)")

    def _finish(self, item: ForwardItem, status: int | None, reason: str) -> None:
        self.on_result(ForwardResult(item, False, True, status, reason))
