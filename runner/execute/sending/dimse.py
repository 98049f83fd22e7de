"""The DIMSE senders: C-STORE to the destination, from a worker process (`pool`) or, when
the rules cannot be shipped to one (or the caller asks so), from the forwarder's thread.

`DimseSenders` is the `Senders` factory the run picks for a DIMSE destination.
"""

from __future__ import annotations

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.store import StoreClient
from runner.execute.sending.pool import Preforked, ProcessSender, can_ship
from runner.execute.sending.prepare import Job, forward_once
from runner.execute.sending.seam import Attempt, ForwardItem, Sender


class ThreadSender:
    """Forwards in the calling thread with its own StoreClient."""

    def __init__(self, destination: Peer, calling_ae: str, settings: DicomSettings,
                 job: Job) -> None:
        self.client = StoreClient(destination, calling_ae, settings)
        self.job = job

    def prepare(self) -> None:
        """Nothing to prepare: the association opens with the first store."""

    def send(self, item: ForwardItem) -> Attempt:
        """Forward `item` now, in this thread."""
        return forward_once(self.client, self.job, item)

    def close(self) -> None:
        """Release the association."""
        self.client.close()


class DimseSenders:
    """C-STORE senders, each with its own association: by default each in a worker process
    (taken from `preforked` first), so that reading, morphing and sending do not compete
    with the listener for this interpreter's GIL; with `processes=False` (or rules that
    cannot be sent to a process), in the forwarder's threads."""

    def __init__(self, destination: Peer, calling_ae: str, settings: DicomSettings, job: Job,
                 processes: bool = True, preforked: Preforked | None = None) -> None:
        self.destination = destination
        self.calling_ae = calling_ae
        self.settings = settings
        self.job = job
        self.processes = processes and can_ship(job.rules)
        self.preforked = preforked

    def new(self) -> Sender:
        """The sender one worker thread uses."""
        if not self.processes:
            return ThreadSender(self.destination, self.calling_ae, self.settings, self.job)
        return ProcessSender(self.destination, self.calling_ae, self.settings, self.job,
                             self.preforked)

    def close(self) -> None:
        """End the preforked workers no thread adopted (fewer threads than workers)."""
        if self.preforked is not None:
            self.preforked.close()
