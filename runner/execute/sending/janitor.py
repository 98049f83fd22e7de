"""The spool's janitor: forwarded files are removed once the ledger has committed their
forward (a state change is recorded only after its side effect, and a file only goes once
the ledger holds that it may). A sweeper thread sweeps every half second.
"""

from __future__ import annotations

import threading

from runner.dicom.spool import Spool
from runner.ledger import Ledger

_SWEEP_SECONDS = 0.5


class Janitor:
    """Removes forwarded spool files once the ledger has committed their forward."""

    def __init__(self, spool: Spool, ledger: Ledger) -> None:
        self.spool = spool
        self.ledger = ledger
        self.names: list[str] = []
        self.removing = 0  # files taken by a sweep under way, not removed yet
        self.lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Whether forwarded files still wait to be removed from the spool."""
        with self.lock:
            return bool(self.names or self.removing)

    def discard_later(self, name: str) -> None:
        """Queue a spool file for removal after the next ledger flush."""
        with self.lock:
            self.names.append(name)

    def sweep(self) -> int:
        """Flush the ledger, then remove the files queued before the flush."""
        with self.lock:
            names, self.names = self.names, []
            self.removing = len(names)
        if not names:
            return 0
        try:
            self.ledger.flush()
            for name in names:
                self.spool.remove(name)
        finally:
            with self.lock:
                self.removing = 0
        return len(names)


class Sweeper(threading.Thread):
    """Sweeps `janitor` every half second until `stop`."""

    def __init__(self, janitor: Janitor) -> None:
        super().__init__(name="janitor", daemon=True)
        self.janitor = janitor
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(_SWEEP_SECONDS):
            self.janitor.sweep()

    def stop(self) -> None:
        """Stop sweeping (waits for a sweep under way)."""
        self.halt.set()
        self.join(timeout=10)
