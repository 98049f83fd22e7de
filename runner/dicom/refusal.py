"""Why no usable association came about (a Refusal), and when a wait counts as a timeout.

Plain values shared by the lean upper layer (runner.dicom.ul) and the services on it
(echo, find, move, store, commitment).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from runner.dicom.status import StatusCategory

# A wait that ended within this fraction of its timeout is taken to have hit the timeout.
_TIMEOUT_SLACK = 0.95


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why no usable association came about: a transport-level category and a message."""

    category: StatusCategory
    detail: str


def timed_out(started: float, timeout: float) -> bool:
    """Whether a wait that began at `started` (time.monotonic) lasted about `timeout`."""
    return time.monotonic() - started >= timeout * _TIMEOUT_SLACK
