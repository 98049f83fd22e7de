"""A deliberately fussy destination archive (pynetdicom, real DICOM on loopback) for faults.

It stores what it is sent in memory and answers image-level and study-level C-FIND from it,
but a `policy(sop_uid, attempt)` decides each C-STORE's fate: a status to answer, or "lost"
(store the instance, then abort the association before answering, as when a response is
lost on the network).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pynetdicom import AllStoragePresentationContexts, evt
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import STUDY_ROOT_FIND, VERIFICATION
from runner.sim.ae import make_ae

Policy = Callable[[str, int], int | str]


def accept_all(_sop: str, _attempt: int) -> int | str:
    """Store everything."""
    return 0x0000


@dataclass
class FussyArchive:
    """A destination whose C-STORE answers follow `policy`; `start()`, then `stop()`."""

    ae_title: str = "FUSSY"
    policy: Policy = accept_all
    stored: dict[str, Dataset] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)
    _server: ThreadedAssociationServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def peer(self) -> Peer:
        assert self._server is not None
        return Peer(self.ae_title, "127.0.0.1", int(self._server.server_address[1]))

    def start(self) -> FussyArchive:
        ae = make_ae(self.ae_title, DicomSettings())
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(VERIFICATION)
        ae.add_supported_context(STUDY_ROOT_FIND)
        handlers: list[EventHandlerType] = [(evt.EVT_C_STORE, self._on_store),
                                            (evt.EVT_C_FIND, self._on_find),
                                            (evt.EVT_C_ECHO, lambda _e: 0x0000)]
        self._server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_store(self, event: Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        sop = str(ds.SOPInstanceUID)
        with self._lock:
            self.attempts[sop] += 1
            verdict = self.policy(sop, self.attempts[sop])
            if verdict in (0x0000, "lost") or (isinstance(verdict, int) and verdict >> 12 == 0xB):
                self.stored[sop] = ds
        if verdict == "lost":
            event.assoc.abort()
            return 0x0000
        assert isinstance(verdict, int)
        return verdict

    def _on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        query = event.identifier
        study = str(query.get("StudyInstanceUID", ""))
        with self._lock:
            held = [ds for ds in self.stored.values() if str(ds.StudyInstanceUID) == study]
        if query.QueryRetrieveLevel == "STUDY":
            if held:
                yield 0xFF00, _study_answer(study, len(held))
            return
        for ds in held:
            yield 0xFF00, _image_answer(ds)


def _study_answer(study: str, count: int) -> Dataset:
    answer = Dataset()
    answer.QueryRetrieveLevel = "STUDY"
    answer.StudyInstanceUID = study
    answer.NumberOfStudyRelatedInstances = count
    return answer


def _image_answer(ds: Dataset) -> Dataset:
    answer = Dataset()
    answer.QueryRetrieveLevel = "IMAGE"
    answer.StudyInstanceUID = ds.StudyInstanceUID
    answer.SeriesInstanceUID = ds.SeriesInstanceUID
    answer.SOPInstanceUID = ds.SOPInstanceUID
    return answer
