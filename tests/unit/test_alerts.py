"""Alerts reach people at once: a command with the event in its environment, a webhook POST."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from runner.execute.alerts import Alerter
from runner.profile.models import Alert


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_webhook_receives_the_event_as_json(
        webhook: tuple[str, list[dict[str, object]]]) -> None:
    url, received = webhook
    alerter = Alerter("st-elsewhere", Alert(webhook=url))
    alerter.send("device_down", "wfm1", {"failures": 3})
    alerter.wait()
    assert len(received) == 1
    assert {k: received[0][k] for k in ("site", "event", "device", "detail")} == {
        "site": "st-elsewhere", "event": "device_down", "device": "wfm1",
        "detail": {"failures": 3}}


def test_command_gets_the_event_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "alert.txt"
    script = (f"import os; open({str(out)!r}, 'w').write(os.environ['PACSMIG_EVENT'] + ' ' + "
              "os.environ['PACSMIG_DEVICE'])")
    alerter = Alerter("site", Alert(command=[sys.executable, "-c", script]))
    alerter.send("device_up", "das2", {})
    alerter.wait()
    assert out.read_text() == "device_up das2"


def test_a_failing_alert_never_stops_the_run(caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter("site", Alert(webhook="http://127.0.0.1:9/unreachable",
                                    command=["/nonexistent/alert-program"]))
    alerter.send("device_down", "wfm1", {})
    alerter.wait()
    assert "alert command failed" in caplog.text and "alert webhook failed" in caplog.text


def test_no_alert_configured_sends_nothing() -> None:
    alerter = Alerter("site", Alert())
    alerter.send("device_down", "wfm1", {})
    assert alerter.threads == []
