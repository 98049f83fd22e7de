"""A real DICOM Query/Retrieve SCP over a synthetic archive: C-ECHO, C-FIND, C-MOVE.

It serves the studies of `runner.sim.generate` on loopback, records every request it is
asked (kind, level, calling AE: no patient data), and takes a `Behaviour` that decides what
a PACS would do: which tier a study is on, how long a retrieve waits for a recall, whether the
device locks up or fails. Tests use it to prove what the runner asks; the demo builds the
tier-modelling PACS on it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydicom.dataset import Dataset, FileDataset
from pynetdicom import evt
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer

from runner.dicom.peer import DicomSettings
from runner.dicom.sop import (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_MOVE,
    VERIFICATION,
)
from runner.sim.ae import make_ae
from runner.sim.generate import SECONDARY_CAPTURE, SOP_CLASS_BY_MODALITY, StudySpec, make_study


@dataclass(frozen=True, slots=True)
class Request:
    """One request the SCP was asked: no identifiers beyond UIDs and dates."""

    kind: str  # "C-ECHO", "C-FIND", "C-MOVE"
    level: str
    calling_ae: str
    study_uid: str = ""
    move_destination: str = ""


@dataclass(frozen=True, slots=True)
class MoveDirective:
    """What the PACS does with a C-MOVE before sending anything."""

    delay_seconds: float = 0.0  # e.g. a recall from nearline storage
    status: int | None = None   # a final failure status instead of the move
    stall: bool = False         # send nothing more until aborted (a locked-up device)


class Behaviour:
    """How the simulated PACS behaves; the default is a healthy PACS with everything local."""

    answer_counts: bool = True
    answer_availability: bool = True

    def availability(self, spec: StudySpec) -> str:
        """InstanceAvailability for a study: ONLINE, NEARLINE or OFFLINE."""
        return spec.instance_availability or "ONLINE"

    def before_move(self, spec: StudySpec) -> MoveDirective:
        """Called when a C-MOVE of `spec` starts."""
        return MoveDirective()

    def after_move(self, spec: StudySpec, sent: int) -> None:
        """Called when a C-MOVE of `spec` ends (however it ends), having sent `sent`."""

    def echo_status(self) -> int:
        """The C-ECHO answer (0x0000: healthy)."""
        return 0x0000

    def broken(self) -> bool:
        """Whether a move under way stops now (the device locked up meanwhile)."""
        return False

    # Transfer syntaxes the PACS holds instances in besides the defaults: each proposed in a
    # context of its own for the C-STORE sub-operations of a move.
    store_syntaxes: tuple[str, ...] = ()

    def encoded(self, instance: FileDataset) -> FileDataset:
        """The instance as this PACS holds it (by default as generated: uncompressed)."""
        return instance


@dataclass
class QRServer:
    """The Q/R SCP: `start()` on a loopback port (0 = any free one), `stop()` when done."""

    ae_title: str
    studies: Sequence[StudySpec]
    destinations: dict[str, tuple[str, int]]
    behaviour: Behaviour = field(default_factory=Behaviour)
    host: str = "127.0.0.1"
    port: int = 0
    settings: DicomSettings = field(default_factory=DicomSettings)
    requests: list[Request] = field(default_factory=list)
    _server: ThreadedAssociationServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.by_uid = {str(s.study_uid): s for s in self.studies}

    def start(self) -> QRServer:
        """Listen in the background; returns self with `port` set."""
        ae = make_ae(self.ae_title, self.settings)
        for uid in (VERIFICATION, STUDY_ROOT_FIND, PATIENT_ROOT_FIND, STUDY_ROOT_MOVE,
                    PATIENT_ROOT_MOVE):
            ae.add_supported_context(uid)
        for sop_class in {*SOP_CLASS_BY_MODALITY.values(), SECONDARY_CAPTURE}:
            ae.add_requested_context(sop_class)
            for syntax in self.behaviour.store_syntaxes:
                ae.add_requested_context(sop_class, [syntax])
        handlers: list[EventHandlerType] = [
            (evt.EVT_C_ECHO, self._on_echo), (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move)]
        server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        assert server is not None  # block=False always returns the server
        self._server = server
        self.port = int(server.server_address[1])
        return self

    def stop(self) -> None:
        """Stop listening and end every association."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def asked(self, kind: str) -> list[Request]:
        """The requests of one kind received so far."""
        with self._lock:
            return [r for r in self.requests if r.kind == kind]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _on_echo(self, event: Event) -> int:
        self._record(Request("C-ECHO", "", event.assoc.requestor.ae_title))
        return self.behaviour.echo_status()

    def _on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        query = event.identifier
        level = str(query.get("QueryRetrieveLevel", ""))
        self._record(Request("C-FIND", level, event.assoc.requestor.ae_title,
                             str(query.get("StudyInstanceUID", ""))))
        if level != "STUDY":
            yield from ((0xFF00, ds) for ds in self._lower_levels(query, level))
            return
        for spec in self.studies:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            if _matches(spec, query):
                yield 0xFF00, self._study_answer(spec, query)

    def _study_answer(self, spec: StudySpec, query: Dataset) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.StudyInstanceUID = spec.study_uid
        ds.StudyDate = spec.study_date.strftime("%Y%m%d")
        if "ModalitiesInStudy" in query:
            ds.ModalitiesInStudy = spec.modality
        if "PatientID" in query:
            ds.PatientID = spec.patient_id
        if "NumberOfStudyRelatedInstances" in query and self.behaviour.answer_counts:
            ds.NumberOfStudyRelatedInstances = spec.instance_count
        if "InstanceAvailability" in query and self.behaviour.answer_availability:
            ds.InstanceAvailability = self.behaviour.availability(spec)
        return ds

    def _lower_levels(self, query: Dataset, level: str) -> Iterator[Dataset]:
        spec = self.by_uid.get(str(query.get("StudyInstanceUID", "")))
        if spec is None:
            return
        for series in range(1, spec.series_count + 1):
            if level == "SERIES":
                yield _series_answer(spec, series)
                continue
            for number in range(1, spec.instances_per_series + 1):
                yield _image_answer(spec, series, number)

    def move_request(self, event: Event) -> tuple[str, tuple[str, int] | None]:
        """Record a C-MOVE; its study UID and the move destination's address, if known."""
        query = event.identifier
        study_uid = str(query.get("StudyInstanceUID", ""))
        self._record(Request("C-MOVE", str(query.get("QueryRetrieveLevel", "")),
                             event.assoc.requestor.ae_title, study_uid,
                             str(event.move_destination or "")))
        return study_uid, self.destinations.get(str(event.move_destination).strip())

    def _on_move(self, event: Event) -> Iterator[Any]:
        query = event.identifier
        study_uid, address = self.move_request(event)
        if address is None:
            yield None, None
            return
        spec = self.by_uid.get(study_uid)
        if spec is None:
            yield address[0], address[1]
            yield 1  # pynetdicom answers success at once for 0 sub-operations
            yield 0xC000, None
            return
        directive = self.behaviour.before_move(spec)
        sent = [0]
        try:
            yield address[0], address[1]
            yield from self._move_body(event, spec, query, directive, sent)
        finally:
            self.behaviour.after_move(spec, sent[0])

    def _move_body(self, event: Event, spec: StudySpec, query: Dataset,
                   directive: MoveDirective, sent: list[int]) -> Iterator[Any]:
        if directive.status is not None:
            yield 1  # pynetdicom answers success at once for 0 sub-operations
            yield directive.status, None
            return
        instances = [self.behaviour.encoded(ds)
                     for ds in selected_instances(make_study(spec), query)]
        yield len(instances)
        if not _wait(event, directive):
            yield 0xFE00, None
            return
        for ds in instances:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            if self.behaviour.broken():
                yield 0xA702, None  # out of resources: sub-operations stopped
                return
            yield 0xFF00, ds
            sent[0] += 1


def _wait(event: Event, directive: MoveDirective) -> bool:
    """Sleep for the directive's delay (or forever when stalled) unless cancelled/aborted."""
    deadline = time.monotonic() + (1e9 if directive.stall else directive.delay_seconds)
    while time.monotonic() < deadline:
        if event.is_cancelled or not event.assoc.is_established:
            return False
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return True


def selected_instances(instances: list[FileDataset], query: Dataset) -> list[FileDataset]:
    """The instances an IMAGE-level move asks for (all of them for a study-level move)."""
    if str(query.get("QueryRetrieveLevel", "")) != "IMAGE" or not query.get("SOPInstanceUID"):
        return instances
    value = query.SOPInstanceUID
    uids = {str(value)} if isinstance(value, str) else {str(u) for u in value}
    return [ds for ds in instances if str(ds.SOPInstanceUID) in uids]


def _matches(spec: StudySpec, query: Dataset) -> bool:
    uid = str(query.get("StudyInstanceUID", "") or "")
    if uid and uid != spec.study_uid:
        return False
    if not _date_in(spec.study_date, str(query.get("StudyDate", "") or "")):
        return False
    if not _wildcard_match(spec.patient_id, str(query.get("PatientID", "") or "")):
        return False
    modalities = str(query.get("ModalitiesInStudy", "") or "")
    return not modalities or spec.modality in modalities.split("\\")


def _wildcard_match(value: str, criterion: str) -> bool:
    """DICOM wildcard matching (PS3.4 C.2.2.2.4): `*` any run, `?` any one character; an
    empty criterion matches everything."""
    if not criterion or criterion == "*":
        return True
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                      for c in criterion)
    return re.fullmatch(pattern, value, re.DOTALL) is not None


def _date_in(day: date, criterion: str) -> bool:
    if not criterion:
        return True
    text = day.strftime("%Y%m%d")
    if "-" not in criterion:
        return text == criterion
    start, end = criterion.split("-", 1)
    return (not start or start <= text) and (not end or text <= end)


def _series_answer(spec: StudySpec, series: int) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid(series)
    ds.Modality = spec.modality
    ds.NumberOfSeriesRelatedInstances = spec.instances_per_series
    return ds


def _image_answer(spec: StudySpec, series: int, number: int) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid(series)
    ds.SOPInstanceUID = spec.sop_uid(series, number)
    ds.SOPClassUID = SOP_CLASS_BY_MODALITY.get(spec.modality, SECONDARY_CAPTURE)
    ds.InstanceNumber = number
    return ds
