"""The priority inbox: requests kept on disk by whoever receives them when the ledger is not
theirs to write (`pacsmig priority` while a run holds the ledger, `pacsmig listen` between
runs), taken into the ledger by the run's lane.

One JSON line per request in `<reports.dir>/priority-inbox.jsonl`, appended under an
exclusive lock and fsynced before the sender is answered. The lane takes the inbox under the
same lock: it records every request in the ledger, commits, and only then empties the file,
so a crash in between leaves requests that are taken again, and kept once (a request's id
is stable). The patient ID is in clear in the file until the lane takes it; the file is the
runner's own, created readable by its owner only.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from runner.plan.priority import PriorityRequest, Trigger

INBOX_FILENAME = "priority-inbox.jsonl"


class Inbox:
    """The inbox file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, request: PriorityRequest) -> None:
        """Keep `request` (on disk, synced) for the next lane that takes the inbox."""
        line = json.dumps(_encoded(request), sort_keys=True) + "\n"
        with self._locked() as fd:
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)

    def take(self, keep: Callable[[list[PriorityRequest]], None]) -> int:
        """Hand every request waiting to `keep` (which must have them committed when it
        returns), then empty the inbox; how many there were. A line that cannot be read is
        left out (and counted nowhere: it was never answered as kept)."""
        if not self.path.exists():
            return 0
        with self._locked() as fd:
            text = _read_all(fd)
            requests = [r for r in (_decoded(line) for line in text.splitlines()) if r]
            if requests:
                keep(requests)
            os.ftruncate(fd, 0)
            os.fsync(fd)
        return len(requests)

    def waiting(self) -> int:
        """How many requests wait in the inbox (for `status`)."""
        try:
            return sum(1 for line in self.path.read_text("utf-8").splitlines() if line)
        except OSError:
            return 0

    @contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock


def _read_all(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _encoded(request: PriorityRequest) -> dict[str, str]:
    return {"trigger": request.trigger.value, "patient_id": request.patient_id,
            "received_at": request.received_at.isoformat(), "issuer": request.issuer,
            "due": request.due.isoformat() if request.due else "",
            "modality": request.modality, "body_part": request.body_part,
            "reference": request.reference, "event": request.event}


def _decoded(line: str) -> PriorityRequest | None:
    try:
        data = json.loads(line)
        return PriorityRequest(
            Trigger(data["trigger"]), data["patient_id"],
            datetime.fromisoformat(data["received_at"]), data.get("issuer", ""),
            date.fromisoformat(data["due"]) if data.get("due") else None,
            data.get("modality", ""), data.get("body_part", ""), data.get("reference", ""),
            data.get("event", ""))
    except (ValueError, KeyError, TypeError):
        return None
