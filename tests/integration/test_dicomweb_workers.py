"""STOW-RS senders in worker processes: instances posted by the worker, a worker that dies
answers its instances as failed attempts (retried like any other) and the next instance
starts a new worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.destinations.web import Credentials, WebService
from runner.execute.sending.dicomweb import WebLink
from runner.execute.sending.dicomweb_pool import LOST, WebProcessSender
from runner.execute.sending.prepare import Job
from runner.morph import compile_rules
from tests.unit.test_dicomweb_sender import _items


class _Stored(BaseHTTPRequestHandler):
    """Answers every POST 200 (every instance stored)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # http.server names the handlers
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        """Quiet."""


@pytest.fixture
def service() -> Iterator[WebService]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stored)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield WebService(f"http://127.0.0.1:{server.server_address[1]}/dicom-web")
    server.shutdown()
    server.server_close()


def test_a_worker_posts_and_a_dead_ones_instances_come_back_failed(
        service: WebService, tmp_path: Path) -> None:
    first, second, third = _items(tmp_path, 1, 3)
    fatal: list[str] = []
    sender = WebProcessSender(WebLink(service, Credentials(), fatal.append, "VNA"),
                              Job(compile_rules([])))
    sender.prepare()
    try:
        assert sender.send(first).ok
        assert sender.worker is not None
        sender.submit(second)
        sender.worker[0].kill()
        sender.worker[0].join(5)
        lost = sender.collect()
        assert lost == LOST and lost.retry
        assert sender.send(third).ok  # a new worker
        assert sender.generation == 2 and not fatal
    finally:
        sender.close()
