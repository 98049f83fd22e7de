"""Telling people at once: the profile's alert command and webhook, called in the background.

An alert carries the event, the device and a short detail: never patient data. A failing
alert is logged and never stops the run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime

from runner.profile.models import Alert

log = logging.getLogger(__name__)
_TIMEOUT = 10.0


class Alerter:
    """Sends alerts for a site; `send` returns at once, the work happens in a thread."""

    def __init__(self, site_id: str, config: Alert) -> None:
        self.site_id = site_id
        self.config = config
        self.threads: list[threading.Thread] = []

    def send(self, event: str, device: str, detail: Mapping[str, object]) -> None:
        """Alert about `event` on `device` (no-op when the profile asks for no alerts)."""
        if not self.config.command and not self.config.webhook:
            return
        payload = {"site": self.site_id, "event": event, "device": device,
                   "at": datetime.now(UTC).isoformat(), "detail": dict(detail)}
        thread = threading.Thread(target=self._deliver, args=(payload,), daemon=True,
                                  name=f"alert-{event}")
        self.threads.append(thread)
        thread.start()

    def wait(self, timeout: float = _TIMEOUT) -> None:
        """Wait for alerts under way (at the end of a run)."""
        for thread in self.threads:
            thread.join(timeout)

    def _deliver(self, payload: dict[str, object]) -> None:
        if self.config.command:
            self._run_command(payload)
        if self.config.webhook:
            self._post(self.config.webhook, payload)

    def _run_command(self, payload: dict[str, object]) -> None:
        assert self.config.command is not None
        env = {**os.environ, "PACSMIG_SITE": self.site_id, "PACSMIG_EVENT": str(payload["event"]),
               "PACSMIG_DEVICE": str(payload["device"]), "PACSMIG_AT": str(payload["at"]),
               "PACSMIG_DETAIL": json.dumps(payload["detail"], default=str)}
        try:
            subprocess.run(self.config.command, env=env, timeout=_TIMEOUT, check=True,
                           capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("alert command failed: %s", exc)

    def _post(self, url: str, payload: dict[str, object]) -> None:
        body = json.dumps(payload, default=str).encode()
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                response.read()
        except (OSError, ValueError) as exc:
            log.warning("alert webhook failed: %s", exc)
