"""STOW-RS senders in worker processes: each forwarder thread hands its instances (paths,
slots and UIDs, never pixel data) to a worker that reads, morphs and posts them with its own
`WebSender` and HTTP connection, so that this work does not share the listener's GIL (the
limit measured with senders in threads: receiving took 29% longer).

Workers start from the forkserver of runner.execute.sending.pool (a fork of a
single-threaded server, never of the threaded runner). A refusal of the credentials is
reported back and stops the run in the main process. A worker that dies loses the instances
it held: they come back as failed attempts, retried like any other, and the next instance
starts a new worker.
"""

from __future__ import annotations

import contextlib
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from runner.destinations.web import Credentials, WebService
from runner.execute.sending.dicomweb import WebLink, WebSender
from runner.execute.sending.pool import worker_context
from runner.execute.sending.prepare import Job
from runner.execute.sending.seam import Attempt, ForwardItem

STOP_SECONDS = 5.0
LOST = Attempt(False, None, "the forwarding worker process ended before answering")


def serve_web(conn: Connection, service: WebService, credentials: Credentials, name: str,
              job: Job) -> None:
    """A worker: submit and collect as the main process asks, until told to stop."""
    link = WebLink(service, credentials, lambda reason: conn.send(("fatal", reason)), name)
    sender = WebSender(link, job)
    sender.prepare()
    try:
        while (message := _next(conn)) is not None:
            _kind, item = message
            if item is not None:  # ("submit", item)
                sender.submit(item)
            else:  # ("collect", None)
                conn.send(("attempt", sender.collect()))
    finally:
        sender.close()


def _next(conn: Connection) -> tuple[str, ForwardItem | None] | None:
    try:
        message: tuple[str, ForwardItem | None] | None = conn.recv()
    except (EOFError, OSError):  # the main process is gone
        return None
    return message


class WebProcessSender:
    """The main process's end of one worker: up to `depth` instances out before the first
    answer comes back (the worker sends those of one study together)."""

    def __init__(self, link: WebLink, job: Job) -> None:
        self.link = link
        self.job = job
        self.depth = link.service.max_instances_per_request
        self.worker: tuple[BaseProcess, Connection] | None = None
        self.generation = 0
        self.out: deque[int] = deque()  # the worker generation each instance went to

    def prepare(self) -> None:
        """Start the worker process."""
        self._start()

    def send(self, item: ForwardItem) -> Attempt:
        """One instance, answered at once."""
        self.submit(item)
        return self.collect()

    def submit(self, item: ForwardItem) -> None:
        """Hand `item` to the worker (a new one if the last ended)."""
        if self.worker is None:
            self._start()
        assert self.worker is not None
        self.out.append(self.generation)
        try:
            self.worker[1].send(("submit", item))
        except OSError:
            self._lose()

    def collect(self) -> Attempt:
        """The Attempt of the oldest instance handed over (LOST if its worker ended)."""
        generation = self.out.popleft()
        if self.worker is None or generation != self.generation:
            return LOST
        conn = self.worker[1]
        try:
            conn.send(("collect", None))
            while (answer := conn.recv())[0] == "fatal":
                self.link.on_fatal(answer[1])
        except (EOFError, OSError):
            self._lose()
            return LOST
        attempt: Attempt = answer[1]
        return attempt

    def close(self) -> None:
        """Stop the worker."""
        if self.worker is None:
            return
        process, conn = self.worker
        self.worker = None
        with contextlib.suppress(OSError):
            conn.send(None)
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join(STOP_SECONDS)
        conn.close()

    def _start(self) -> None:
        context = worker_context()
        ours, theirs = context.Pipe()
        link = self.link
        process = context.Process(  # type: ignore[attr-defined]
            target=serve_web, name="stow-worker", daemon=True,
            args=(theirs, link.service, link.credentials, link.name, self.job))
        process.start()
        theirs.close()
        self.generation += 1
        self.worker = (process, ours)

    def _lose(self) -> None:
        """The worker ended: what it held is lost (answered LOST), the next starts anew."""
        if self.worker is not None:
            process, conn = self.worker
            self.worker = None
            conn.close()
            process.join(STOP_SECONDS)
