"""The DICOMweb senders: each instance read and morphed by runner.execute.sending.prepare
(the same rules, the same lossless transcoding), then sent by STOW-RS, batched per study
into multipart requests of at most `max_instances_per_request` instances and
`max_request_mb` (runner.destinations.stow), each sender with its own HTTP connection.
An instance is read through `Job.read` (in place from the memory spool when cut through);
a sender holds at most about `max_request_mb` of instances before it sends them.

The service's answers become the forwarder's Attempts: per instance from the STOW-RS
answer; a request refused as too large (413) is split in halves; 429/503 wait Retry-After
and go again; 401/403 stop the run (`on_fatal`), the credentials never shown.
"""

from __future__ import annotations

import io
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

import httpx
from pydicom import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian

from runner.destinations.stow import StowAnswer, StowPart, Whole, stow
from runner.destinations.web import Credentials, WebService, open_client
from runner.dicom.part10 import MetaError, file_meta, read_meta
from runner.dicom.status import StatusCategory
from runner.dicom.store import StoreClient, StoreOutcome
from runner.execute.sending.prepare import Job, Prepared, prepare
from runner.execute.sending.seam import Attempt, ForwardItem, Sender

BUSY_TRIES = 3  # a request answered 429/503 is sent again this many times
MAX_WAIT = 30.0  # seconds: the longest Retry-After honoured before giving the try back


class _Capture:
    """Takes the store `prepare` made as the STOW-RS part to send (in place of the
    StoreClient a DIMSE sender gives it)."""

    def __init__(self, sop_instance_uid: str) -> None:
        self.sop_instance_uid = sop_instance_uid
        self.part: StowPart | None = None

    def store_part10(self, raw: bytes | memoryview, sop_class_uid: str, syntax: str,
                     name: str = "the instance") -> StoreOutcome:
        """The instance as received (no rule changed it): its bytes as they are, read from
        the spool or in place from the memory spool; its meta must say what was received."""
        try:
            meta = read_meta(raw)
        except MetaError as error:
            return self._refused(f"cannot read the file meta of {name}: {error}")
        if (meta.sop_class_uid, meta.transfer_syntax) != (sop_class_uid, syntax):
            return self._refused(f"file meta says SOP class {meta.sop_class_uid} in "
                                 f"{meta.transfer_syntax}, not {(sop_class_uid, syntax)}")
        self.part = StowPart(meta.sop_instance_uid, memoryview(raw).nbytes, lambda: [raw])
        return self._taken()

    def store_parts(self, sop_class_uid: str, sop_instance_uid: str, syntax: str,
                    parts: Sequence[bytes | memoryview]) -> StoreOutcome:
        """A re-encoded data set: file meta, then its parts."""
        chunks = [file_meta(sop_class_uid, sop_instance_uid, syntax), *parts]
        size = sum(memoryview(c).nbytes for c in chunks)
        self.part = StowPart(sop_instance_uid, size, lambda: chunks)
        return self._taken()

    def store_dataset(self, ds: Dataset) -> StoreOutcome:
        """A data set read whole (morphed or transcoded), written as a Part-10 file."""
        out = io.BytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
        encoded = out.getvalue()
        self.part = StowPart(str(ds.SOPInstanceUID), len(encoded), lambda: [encoded])
        return self._taken()

    def _taken(self) -> StoreOutcome:
        return StoreOutcome(self.sop_instance_uid, StatusCategory.SUCCESS, 0x0000, "prepared",
                            0.0, False)

    def _refused(self, problem: str) -> StoreOutcome:
        return StoreOutcome(self.sop_instance_uid, StatusCategory.FAILURE, None, problem, 0.0,
                            False)


@dataclass(frozen=True, slots=True)
class _Ready:
    """One submitted instance: what `prepare` made of it, and its part (None: refused)."""

    item: ForwardItem
    prepared: Prepared
    part: StowPart | None


def _ready(job: Job, item: ForwardItem) -> _Ready:
    return _captured(item, prepare(job, item))


def _captured(item: ForwardItem, prepared: Prepared) -> _Ready:
    if prepared.store is None:
        return _Ready(item, prepared, None)
    capture = _Capture(prepared.dest_sop_instance_uid or item.sop_instance_uid)
    taken = prepared.store(cast(StoreClient, capture))  # duck-typed: the store_* methods
    if not taken.ok:  # not sent: the spooled instance is not what was received
        refusal = Attempt(False, None, taken.detail, retry=False)
        return _Ready(item, replace(prepared, store=None, refusal=refusal), None)
    return _Ready(item, prepared, capture.part)


@dataclass(frozen=True, slots=True)
class WebLink:
    """Where and how a sender posts: the service, its credentials, what to do on 401/403."""

    service: WebService
    credentials: Credentials
    on_fatal: Callable[[str], None]
    name: str


class WebSender:
    """STOW-RS over one HTTP connection; takes up to `depth` instances before answering
    the first, and sends those of one study together."""

    def __init__(self, link: WebLink, job: Job) -> None:
        self.link = link
        self.job = job
        self.depth = link.service.max_instances_per_request
        self.pending: list[_Ready] = []
        self.answers: deque[Attempt] = deque()
        self.client: httpx.Client | None = None

    def prepare(self) -> None:
        """Open the HTTP client (its connection opens with the first request)."""
        self.client = open_client(self.link.service, self.link.credentials)

    def submit(self, item: ForwardItem) -> None:
        """Read and morph `item` now; it is sent with the others of its study (at once,
        with those before it, when what is pending reaches a request's size: a morphed
        instance waits in memory)."""
        self.pending.append(_ready(self.job, item))
        if sum(r.part.size for r in self.pending if r.part) >= \
                self.link.service.max_request_bytes:
            self.answers.extend(self._flush())

    def collect(self) -> Attempt:
        """The Attempt of the oldest instance submitted (sending what is pending first)."""
        if not self.answers:
            self.answers.extend(self._flush())
        return self.answers.popleft()

    def send(self, item: ForwardItem) -> Attempt:
        """One instance in one request."""
        self.submit(item)
        return self.collect()

    def close(self) -> None:
        """Close the HTTP connection."""
        if self.client is not None:
            self.client.close()

    def _flush(self) -> list[Attempt]:
        """Send every pending instance, a study per request; Attempts in submission order."""
        pending, self.pending = self.pending, []
        attempts: dict[int, Attempt] = {}
        for index, ready in enumerate(pending):
            if ready.part is None:
                assert ready.prepared.refusal is not None
                attempts[index] = ready.prepared.refusal
        for batch in batches(pending, self.link.service):
            attempts.update(zip(batch, self._post([pending[i] for i in batch]), strict=True))
        return [attempts[i] for i in range(len(pending))]

    def _post(self, batch: list[_Ready]) -> list[Attempt]:
        """One request for `batch`, split in halves while the service finds it too large."""
        answer = self._stow([r.part for r in batch if r.part is not None])
        if answer.whole is Whole.TOO_LARGE and len(batch) > 1:
            half = len(batch) // 2
            return self._post(batch[:half]) + self._post(batch[half:])
        if answer.whole is Whole.REFUSED_CREDENTIALS:
            self.link.on_fatal(self._refused(answer))
        return [self._attempt(ready, answer) for ready in batch]

    def _stow(self, parts: list[StowPart]) -> StowAnswer:
        assert self.client is not None, "prepare() opens the client"
        answer = stow(self.client, self.link.service, self.link.credentials, parts)
        for _ in range(BUSY_TRIES):
            if answer.whole is not Whole.BUSY or answer.wait > MAX_WAIT:
                break
            time.sleep(answer.wait)
            answer = stow(self.client, self.link.service, self.link.credentials, parts)
        return answer

    def _attempt(self, ready: _Ready, answer: StowAnswer) -> Attempt:
        assert ready.part is not None
        if answer.whole is Whole.TOO_LARGE:
            return Attempt(False, 413, f"larger than {self.link.name} takes in one request "
                           f"({answer.detail}): {ready.part.size:,} bytes", retry=False)
        if answer.whole is not Whole.ANSWERED:
            return Attempt(False, answer.http_status, f"STOW-RS: {answer.detail}")
        said = answer.of(ready.part.sop_instance_uid)
        if said.syntax_refused and ready.prepared.fallback is not None:
            again = _captured(ready.item, ready.prepared.fallback((ExplicitVRLittleEndian,)))
            return again.prepared.refusal or self._post([again])[0]
        if not said.ok:
            return Attempt(False, said.status, f"STOW-RS: {said.detail}")
        prepared = ready.prepared
        return Attempt(True, said.status, said.detail, prepared.dest_sop_instance_uid,
                       values=prepared.values, transcoded=prepared.transcoded,
                       fired=prepared.fired)

    def _refused(self, answer: StowAnswer) -> str:
        service = self.link.service
        where = f" (from {service.auth.where()})" if service.auth is not None else ""
        return (f"destination {self.link.name} refused the credentials: "
                f"{answer.detail}; check destination.dicomweb.auth{where}")


def batches(pending: Sequence[_Ready], service: WebService) -> list[list[int]]:
    """The indexes of `pending` with a part, grouped per study (in order of first
    appearance) and cut at `max_instances_per_request` and `max_request_bytes`."""
    by_study: dict[str, list[int]] = {}
    for index, ready in enumerate(pending):
        if ready.part is not None:
            by_study.setdefault(ready.item.study_uid, []).append(index)
    cut: list[list[int]] = []
    for indexes in by_study.values():
        batch: list[int] = []
        size = 0
        for index in indexes:
            part_size = cast(StowPart, pending[index].part).size
            if batch and (len(batch) >= service.max_instances_per_request
                          or size + part_size > service.max_request_bytes):
                cut.append(batch)
                batch, size = [], 0
            batch.append(index)
            size += part_size
        cut.append(batch)
    return cut


class DicomWebSenders:
    """STOW-RS senders, one HTTP connection each, in the forwarder's threads."""

    def __init__(self, link: WebLink, job: Job) -> None:
        self.link = link
        self.job = job

    def stop_run_with(self, on_fatal: Callable[[str], None]) -> None:
        """What the senders call when the service refuses the credentials (before `new`)."""
        self.link = replace(self.link, on_fatal=on_fatal)

    def new(self) -> Sender:
        """The sender one worker thread uses."""
        return WebSender(self.link, self.job)

    def close(self) -> None:
        """Nothing is shared between the senders."""
