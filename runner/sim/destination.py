"""The embedded destination archive for the demo: C-STORE into a folder, image-level C-FIND,
and Storage Commitment (the report sent back on a new association, as archives do)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AllStoragePresentationContexts, evt
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer

from runner.dicom.commitment_report import STORAGE_COMMITMENT_PUSH
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import STUDY_ROOT_FIND, VERIFICATION
from runner.sim.ae import make_ae


@dataclass(frozen=True, slots=True)
class Held:
    """What the archive keeps in memory of a stored instance (the file is on disk)."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    path: Path


@dataclass
class EmbeddedArchive:
    """A small archive on loopback: `start()`, then `stop()`; files under `folder`."""

    ae_title: str
    folder: Path
    port: int = 0
    peers: dict[str, Peer] = field(default_factory=dict)  # where commitment reports go
    settings: DicomSettings = field(default_factory=DicomSettings)
    held: dict[str, Held] = field(default_factory=dict)
    syntaxes: tuple[str, ...] = ()  # accepted besides pynetdicom's defaults (e.g. HTJ2K)
    _server: ThreadedAssociationServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> EmbeddedArchive:
        """Listen in the background."""
        self.folder.mkdir(parents=True, exist_ok=True)
        ae = make_ae(self.ae_title, self.settings)
        ae.supported_contexts = AllStoragePresentationContexts
        for context in AllStoragePresentationContexts if self.syntaxes else ():
            ae.add_supported_context(str(context.abstract_syntax), list(self.syntaxes))
        for uid in (VERIFICATION, STUDY_ROOT_FIND, STORAGE_COMMITMENT_PUSH):
            ae.add_supported_context(uid)
        handlers: list[EventHandlerType] = [
            (evt.EVT_C_ECHO, lambda _event: 0x0000), (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find), (evt.EVT_N_ACTION, self._on_commit)]
        server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=handlers)
        assert server is not None
        self._server = server
        self.port = int(server.server_address[1])
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def instance_count(self) -> int:
        """How many instances the archive holds."""
        with self._lock:
            return len(self.held)

    def _on_store(self, event: Event) -> int:
        raw = event.encoded_dataset()
        ds = event.dataset
        sop = str(ds.SOPInstanceUID)
        path = self.folder / f"{hashlib.sha256(sop.encode()).hexdigest()[:32]}.dcm"
        path.write_bytes(raw)
        with self._lock:
            self.held[sop] = Held(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                  str(ds.SOPClassUID), path)
        return 0x0000

    def _on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        query = event.identifier
        study = str(query.get("StudyInstanceUID", ""))
        with self._lock:
            held = [(sop, h) for sop, h in self.held.items() if h.study_uid == study]
        if query.QueryRetrieveLevel == "STUDY":
            if held:
                yield 0xFF00, _answer("STUDY", study, NumberOfStudyRelatedInstances=len(held))
            return
        for sop, h in held:
            yield 0xFF00, _answer("IMAGE", study, SeriesInstanceUID=h.series_uid,
                                  SOPInstanceUID=sop, SOPClassUID=h.sop_class_uid)

    def _on_commit(self, event: Event) -> tuple[int, Dataset | None]:
        info = event.action_information
        requestor = event.assoc.requestor.ae_title
        refs = [(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
                for i in info.get("ReferencedSOPSequence", [])]
        threading.Thread(target=self._report, args=(requestor, str(info.TransactionUID), refs),
                         daemon=True, name="commitment-report").start()
        return 0x0000, None

    def _committed(self, refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The references the archive commits to: those it holds."""
        with self._lock:
            return [r for r in refs if r[1] in self.held]

    def _report(self, requestor: str, transaction: str, refs: list[tuple[str, str]]) -> None:
        peer = self.peers.get(requestor)
        if peer is None:
            return
        committed = self._committed(refs)
        failed = [r for r in refs if r not in committed]
        ae = make_ae(self.ae_title, self.settings)
        ae.add_requested_context(STORAGE_COMMITMENT_PUSH)
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
        if assoc.is_established:
            assoc.send_n_event_report(_report(transaction, committed, failed), 2 if failed else 1,
                                      STORAGE_COMMITMENT_PUSH, "1.2.840.10008.1.20.1.1")
            assoc.release()


def _answer(level: str, study: str, **values: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.StudyInstanceUID = study
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _report(transaction: str, committed: list[tuple[str, str]],
            failed: list[tuple[str, str]]) -> Dataset:
    info = Dataset()
    info.TransactionUID = transaction
    info.ReferencedSOPSequence = [_ref(c, i) for c, i in committed]
    if failed:
        info.FailedSOPSequence = [_ref(c, i, reason=0x0112) for c, i in failed]
    return info


def _ref(sop_class: str, sop: str, reason: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop
    if reason is not None:
        item.FailureReason = reason
    return item
