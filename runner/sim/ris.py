"""A simulated RIS for the demo: it sends one HL7 v2 order (ORM^O01) over MLLP for a patient
part way through the migration (python-hl7's MLLP client), as a real RIS would when a
patient is booked, and keeps the ACK's code."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import hl7
from hl7.client import MLLPClient


def order(patient_id: str, due: date, control_id: str) -> str:
    """An ORM^O01 booking `patient_id` for a CT on `due`."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return (f"MSH|^~\\&|SIMRIS|DEMO|PACSMIG|DEMO|{stamp}||ORM^O01|{control_id}|P|2.3\r"
            f"PID|1||{patient_id}^^^DEMO^MR||DEMO^PATIENT\r"
            f"ORC|NW|{control_id}|||SC||^^^{due:%Y%m%d}0900\r"
            f"OBR|1|{control_id}||CT^CT|||||||||||||||||||CT\r")


@dataclass
class SimRis:
    """Sends one order to `host:port` once `ready()` says so (polled), on its own thread."""

    host: str
    port: int
    patient_id: str
    ready: Callable[[], bool]
    sent_at: datetime | None = None
    ack: str = ""
    problem: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SimRis:
        """Wait for `ready` in the background, then send."""
        self._thread = threading.Thread(target=self._run, name="sim-ris", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop waiting (an order not yet sent is not sent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            if self.ready():
                self.send()
                return

    def send(self) -> None:
        """Send the order now; the ACK's MSA-1 in `ack` (or what went wrong in `problem`)."""
        text = order(self.patient_id, date.today() + timedelta(days=1), "DEMO0001")
        try:
            with MLLPClient(self.host, self.port) as client:
                answer = client.send_message(text)
            self.sent_at = datetime.now(UTC)
            message = hl7.parse(answer.strip(b"\x0b\x1c\r").decode("utf-8"))
            self.ack = str(message.segment("MSA")[1])
        except (OSError, ValueError, KeyError, IndexError) as exc:
            self.problem = f"{type(exc).__name__}: {exc}"
