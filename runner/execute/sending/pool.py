"""Forwarding in worker processes: one process per destination association, each with its
own StoreClient, so that reading, morphing and C-STORE do not share the listener's GIL.

A forwarder thread in the main process owns one `ProcessSender`: it sends the items (a few
hundred bytes: paths and UIDs, never pixel data; the worker reads the spooled file itself)
over a pipe, the next one before the worker answers the current one, and collects the
worker's `Attempt`s in order. The worker reads and morphs the next item while the
destination stores the current one (between sending a request and reading its answer), so
neither that work nor the round trip to the main process comes between two stores (each
association waited 0.6 ms between two stores for the main process alone). All in one
thread: a second one for the reading cost 20% more CPU in GIL hand-offs. The ledger, the
retry queue and the run's bookkeeping stay in the main process. Workers come from a
`forkserver` (started once, with the forwarding modules preloaded), so a new worker is a
cheap fork of a single-threaded server, never of the threaded runner.

The first workers of a run are forked straight from the runner (`Preforked`), before it
starts any thread, so they cost no start-up of their own (gc.freeze keeps the pages they
share with the runner shared); the forkserver is started only when a worker must be replaced.

A worker that dies (killed, crashed) or stops answering is replaced by a new one on the next
instance; the instances it held come back as failed attempts, so the forwarder retries them
like any other failed store (C-STORE of the same SOP Instance UID is idempotent). When the
main process dies, its workers read end-of-file on their pipe and exit.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType
from typing import Any

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.store import StoreClient
from runner.execute.sending.prepare import Job, Prepared, deliver, prepare
from runner.execute.sending.seam import INTERNAL_ERROR, Attempt, ForwardItem
from runner.morph import RuleSet

log = logging.getLogger(__name__)

START_METHOD = "forkserver"
_PRELOAD = ["runner.execute.sending.pool"]
_STOP_SECONDS = 5.0
_context: BaseContext | None = None


def _proxy(mapping: dict[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(mapping)


def _reduce_proxy(proxy: Mapping[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _proxy, (dict(proxy),)


# Compiled rules keep lookup tables as read-only mappings; ship them to workers as such.
ForkingPickler.register(MappingProxyType, _reduce_proxy)


def can_ship(rules: RuleSet) -> bool:
    """Whether `rules` can be sent to a worker process (else forward in threads)."""
    try:
        ForkingPickler(io.BytesIO()).dump(rules)
    except Exception as error:  # pickling raises many kinds for what it cannot handle
        log.warning("the rules cannot be sent to worker processes (%s): forwarding in "
                    "threads", error)
        return False
    return True


def worker_context() -> BaseContext:
    """The multiprocessing context workers are started from (one forkserver per run)."""
    global _context  # created once, on first use, then only read
    if _context is None:
        context = multiprocessing.get_context(START_METHOD)
        context.set_forkserver_preload(_PRELOAD)
        _context = context
    return _context


class Preforked:
    """Worker processes forked from the runner itself, waiting to be adopted by senders.

    Forking a process that runs threads can leave the child with a lock some other thread
    held; so workers are forked only while the runner has no other thread (else none are,
    and senders start theirs from the forkserver).
    """

    def __init__(self, workers: list[tuple[BaseProcess, Connection]]) -> None:
        self._workers = workers
        self._lock = threading.Lock()

    @classmethod
    def fork(cls, count: int, destination: Peer, calling_ae: str, settings: DicomSettings,
             job: Job) -> Preforked:
        """Fork `count` workers now (none when other threads run or the job cannot ship)."""
        if threading.active_count() > 1 or not can_ship(job.rules):
            return cls([])
        context = multiprocessing.get_context("fork")
        workers: list[tuple[BaseProcess, Connection]] = []
        gc.freeze()  # the children's garbage collections leave the shared pages shared
        try:
            for _ in range(count):
                ours, theirs = context.Pipe()
                inherited = [conn.fileno() for _, conn in workers] + [ours.fileno()]
                process = context.Process(
                    target=_serve_forked, name="forward-worker", daemon=True,
                    args=(theirs, inherited, destination, calling_ae, settings, job))
                process.start()
                theirs.close()
                workers.append((process, ours))
        finally:
            gc.unfreeze()
        return cls(workers)

    def take(self) -> tuple[BaseProcess, Connection] | None:
        """A waiting worker and our end of its pipe, if one is left (dead ones are dropped)."""
        while True:
            with self._lock:
                if not self._workers:
                    return None
                process, conn = self._workers.pop()
            if process.is_alive():
                return process, conn
            conn.close()

    def close(self) -> None:
        """End the workers nobody adopted."""
        while (worker := self.take()) is not None:
            process, conn = worker
            with contextlib.suppress(OSError):
                conn.send(None)
            process.join(_STOP_SECONDS)
            if process.is_alive():
                process.kill()
            conn.close()


def _serve_forked(conn: Connection, inherited: list[int], destination: Peer,
                  calling_ae: str, settings: DicomSettings, job: Job) -> None:
    """A forked worker: first close the runner's ends of the pipes (its own and its elder
    siblings'), so that the death of the runner reads as end-of-file here."""
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    serve(conn, destination, calling_ae, settings, job)


def serve(conn: Connection, destination: Peer, calling_ae: str, settings: DicomSettings,
          job: Job) -> None:
    """A worker process's loop: forward each item received, answer its Attempt; None ends.

    While the destination stores one instance, the next one (when it has come) is read and
    morphed (`_Lookahead`), so that it is ready when the answer arrives.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    ahead = _Lookahead(conn, job)
    client = StoreClient(destination, calling_ae, settings, while_waiting=ahead.fill)
    try:
        while (prepared := ahead.take()) is not None:
            conn.send(_attempt(client, prepared))
    except (EOFError, OSError):  # the main process is gone
        pass
    finally:
        client.close()
        conn.close()


class _Lookahead:
    """The worker's next instance, prepared ahead: `fill` (while a store waits for its
    answer) prepares it if it has already come, `take` waits for it otherwise."""

    def __init__(self, conn: Connection, job: Job) -> None:
        self.conn, self.job = conn, job
        self.ready: Prepared | None = None
        self.ended = False

    def fill(self) -> None:
        """Prepare the next instance if it is there; never waits (nor fails the store under
        way: a pipe that cannot be polled means the main process is gone)."""
        if self.ready is not None or self.ended:
            return
        try:
            waiting = self.conn.poll(0)
        except OSError:
            self.ended = True
            return
        if waiting:
            self._receive()

    def take(self) -> Prepared | None:
        """The next instance, prepared; None once the main process says so (or is gone)."""
        if self.ready is None and not self.ended:
            self._receive()
        prepared, self.ready = self.ready, None
        return prepared

    def _receive(self) -> None:
        item = _next(self.conn)
        if item is None:
            self.ended = True
        else:
            self.ready = _prepared(self.job, item)


def _next(conn: Connection) -> ForwardItem | None:
    try:
        item: ForwardItem | None = conn.recv()
    except (EOFError, OSError):  # the main process is gone
        return None
    return item


def _prepared(job: Job, item: ForwardItem) -> Prepared:
    try:
        return prepare(job, item)
    except Exception:  # a bug must not take the worker down with it
        log.exception("preparing an instance failed unexpectedly")
        return Prepared(None, INTERNAL_ERROR)


def _attempt(client: StoreClient, prepared: Prepared) -> Attempt:
    try:
        return deliver(client, prepared)
    except Exception:  # a bug must not take the worker down with it
        log.exception("forwarding failed unexpectedly")
        return INTERNAL_ERROR


class ProcessSender:
    """Forwards through one worker process, started on first use and replaced when it dies.

    Pipelined (`depth` 2): the forwarder thread hands over the next instance before the
    worker answers the current one. When a worker dies or falls silent, every instance it
    held comes back as a failed attempt, in order.
    """

    depth = 2

    def __init__(self, destination: Peer, calling_ae: str, settings: DicomSettings,
                 job: Job, preforked: Preforked | None = None) -> None:
        self.args = (destination, calling_ae, settings, job)
        self.settings = settings
        self.preforked = preforked
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.started = 0  # worker processes started so far
        self.waiting = 0  # instances the current worker holds, not yet answered
        self.lost: deque[str] = deque()  # why each instance a lost worker held failed

    @property
    def answer_within(self) -> float:
        """Seconds a worker may take for one instance: every timeout a store can run into."""
        s = self.settings
        return 2 * (s.connection_timeout + s.acse_timeout + s.dimse_timeout) + 30.0

    def prepare(self) -> None:
        """Start the worker process now, before the first instance arrives."""
        self._connection()

    def send(self, item: ForwardItem) -> Attempt:
        """Forward `item` in the worker; a dead or silent worker is a failed attempt."""
        self.submit(item)
        return self.collect()

    def submit(self, item: ForwardItem) -> None:
        """Hand `item` to the worker (starting one if there is none, or it died)."""
        conn = self._connection()
        try:
            conn.send(item)
        except OSError:
            self.lost.append(self._lose("the forwarding worker process died"))  # this one too
            return
        self.waiting += 1

    def collect(self) -> Attempt:
        """The oldest pending instance's Attempt."""
        if self.lost:
            return Attempt(False, None, self.lost.popleft())
        if self.conn is None or not self.waiting:
            return Attempt(False, None, "internal error: nothing submitted to the worker",
                           retry=False)
        try:
            if self.conn.poll(self.answer_within):
                answer: Attempt = self.conn.recv()
                self.waiting -= 1
                return answer
            detail = f"the forwarding worker gave no answer in {self.answer_within:.0f} s"
        except (EOFError, OSError):
            detail = "the forwarding worker process died"
        self._lose(detail)
        return Attempt(False, None, self.lost.popleft())

    def _lose(self, detail: str) -> str:
        """End the current worker; each instance it held fails with `detail` (returned, with
        the exit code)."""
        held = self.waiting
        code = self._discard()
        log.warning("%s (exit code %s); its %d instance(s) will be tried again", detail, code,
                    held)
        reason = f"{detail} (exit code {code})"
        self.lost.extend([reason] * held)
        return reason

    def close(self) -> None:
        """Ask the worker to finish (it releases its association), then make sure it ends."""
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self._discard(_STOP_SECONDS)

    def _connection(self) -> Connection:
        if self.conn is None or self.process is None or not self.process.is_alive():
            if self.waiting:
                self._lose("the forwarding worker process died")
            self._discard()
            self._start()
        assert self.conn is not None
        return self.conn

    def _start(self) -> None:
        adopted = self.preforked.take() if self.preforked is not None else None
        if adopted is not None:
            self.process, self.conn = adopted
            self.started += 1
            return
        ours, theirs = worker_context().Pipe()
        process = worker_context().Process(  # type: ignore[attr-defined]
            target=serve, args=(theirs, *self.args), name="forward-worker", daemon=True)
        process.start()
        theirs.close()  # only the worker holds its end: its death reads as EOF here
        self.process, self.conn = process, ours
        self.started += 1

    def _discard(self, grace: float = 0.0) -> int | None:
        """End the current worker (waiting up to `grace` s first); its exit code."""
        process, conn = self.process, self.conn
        self.process, self.conn, self.waiting = None, None, 0
        if process is None:
            return None
        process.join(grace)
        if process.is_alive():
            process.kill()
            process.join(_STOP_SECONDS)
        if conn is not None:
            conn.close()
        return process.exitcode
