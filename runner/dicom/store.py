"""C-STORE SCU: one long-lived association re-used for many stores; each store is a StoreOutcome.

Spooled files are sent without being decoded: pynetdicom's `STORE_SEND_CHUNKED_DATASET`
is switched on here, once, at import (the only place the runner sets it). With it,
`send_c_store(path)` reads only the file meta and streams the dataset bytes as they are on
disk, in PDU-sized chunks; this needs an accepted presentation context with exactly the
file's SOP class and transfer syntax, which is why contexts are negotiated per (SOP class,
transfer syntax) pair actually seen. Datasets built in memory (morphed instances) are
encoded by pynetdicom and may use any context it can convert to.

The association is opened lazily, on the first store. When an instance needs a pair not
proposed on the open association, it is re-opened with the extended set (at most
MAX_PAIRS pairs, the least recently used dropped first). A store that fails at transport
level on a re-used association (the peer closed it meanwhile, e.g. a restart) is retried
once on a fresh association: C-STORE of the same SOP Instance UID is idempotent.

transient: 0xA7xx (out of resources) and transport failures (no association, abort,
timeout), worth retrying later; every other failure (0xA9xx, 0xC0xx, 0x01xx, a context
the destination will not accept, an unreadable file) is permanent. Warnings (0xB000,
0xB006, 0xB007) mean stored, with the warning in `detail`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID
from pynetdicom import _config
from pynetdicom.association import Association

from runner.dicom.ae import make_ae
from runner.dicom.association import Refusal, close_association, lost_association, open_association
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.status import StatusCategory, categorize

_config.STORE_SEND_CHUNKED_DATASET = True

# pynetdicom proposes at most 128 contexts; open_association adds one default context for
# the SOP class of the instance at hand, so 127 exact (SOP class, transfer syntax) pairs.
MAX_PAIRS = 127
_MAX_MESSAGE_ID = 0xFFFF
_COERCION_WARNING = 0xB000  # for C-STORE a warning; categorize() reads it as C-MOVE's

Pair = tuple[str, str]  # (SOP Class UID, Transfer Syntax UID)


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """How one C-STORE ended; `transient` says whether trying again later may succeed."""

    sop_instance_uid: str
    category: StatusCategory
    status: int | None
    detail: str
    seconds: float
    transient: bool

    @property
    def ok(self) -> bool:
        """True when the destination stored the instance (success, or with a warning)."""
        return self.category.is_ok


@dataclass(frozen=True, slots=True)
class _Failure:
    category: StatusCategory
    detail: str
    transient: bool
    retry_on_fresh: bool = False  # lost on a re-used association: worth one more try


_Sender = Callable[[Association, int], Dataset]


class StoreClient:
    """C-STOREs to one peer over one re-used association; thread-safe (one store at a time)."""

    def __init__(self, peer: Peer, calling_ae: str, settings: DicomSettings) -> None:
        self.peer = peer
        self.calling_ae = calling_ae
        self.settings = settings
        self._pairs: OrderedDict[Pair, None] = OrderedDict()
        self._assoc: Association | None = None
        self._proposed: frozenset[Pair] = frozenset()
        self._msg_id = 0
        self._opened = 0
        self._fresh = False
        self._lock = threading.Lock()

    @property
    def associations_opened(self) -> int:
        """How many associations this client has opened so far."""
        return self._opened

    def store_file(self, path: Path, sop_class_uid: str, transfer_syntax: str) -> StoreOutcome:
        """Send the Part-10 file at `path` as it is on disk (no decoding, no transcoding).

        `sop_class_uid` and `transfer_syntax` are what the file's meta says (as the listener
        reported them); a file that says otherwise, or cannot be read, is a permanent failure.
        """
        started = time.monotonic()
        meta = _file_meta(path)
        sop_uid = meta[0] if isinstance(meta, tuple) else ""
        problem = _meta_problem(meta, (sop_class_uid, transfer_syntax))
        if problem:
            seconds = time.monotonic() - started
            return StoreOutcome(sop_uid, StatusCategory.FAILURE, None, problem, seconds, False)

        def send(assoc: Association, msg_id: int) -> Dataset:
            return assoc.send_c_store(path, msg_id=msg_id)

        return self._store((sop_class_uid, transfer_syntax), sop_uid, True, send)

    def store_dataset(self, ds: Dataset) -> StoreOutcome:
        """Send an in-memory dataset; its file_meta.TransferSyntaxUID says how it is encoded."""
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is None or "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            raise ValueError("a dataset to store needs SOP Class/Instance UIDs and file meta")

        def send(assoc: Association, msg_id: int) -> Dataset:
            return assoc.send_c_store(ds, msg_id=msg_id)

        pair = (str(ds.SOPClassUID), str(syntax))
        return self._store(pair, str(ds.SOPInstanceUID), False, send)

    def close(self) -> None:
        """Release the association, if one is open."""
        with self._lock:
            self._drop()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _store(self, pair: Pair, sop_uid: str, exact: bool, send: _Sender) -> StoreOutcome:
        started = time.monotonic()
        with self._lock:
            self._remember(pair)
            result = self._attempt(pair, exact, send)
            if isinstance(result, _Failure) and result.retry_on_fresh:
                result = self._attempt(pair, exact, send)
        seconds = time.monotonic() - started
        if isinstance(result, _Failure):
            return StoreOutcome(
                sop_uid, result.category, None, result.detail, seconds, result.transient
            )
        return _answered(sop_uid, result, self.peer, seconds)

    def _attempt(self, pair: Pair, exact: bool, send: _Sender) -> int | _Failure:
        """One C-STORE: the status code, or why there is none."""
        assoc = self._association_for(pair, exact)
        if isinstance(assoc, _Failure):
            return assoc
        fresh = self._fresh
        self._fresh = False
        sent = time.monotonic()
        try:
            status = send(assoc, self._next_msg_id())
        except (ValueError, AttributeError, OSError) as error:
            return _Failure(StatusCategory.FAILURE, f"cannot send: {error}", False)
        except RuntimeError:  # the association ended just before the send
            status = Dataset()
        if "Status" in status:
            return int(status.Status)
        lost = lost_association(assoc, sent, self.settings)
        self._drop()
        retry = not fresh and lost.category is StatusCategory.ABORTED
        return _Failure(lost.category, f"{self.peer}: {lost.detail}", True, retry)

    def _association_for(self, pair: Pair, exact: bool) -> Association | _Failure:
        """The open association if it can carry `pair`, else a (re)opened one."""
        assoc = self._assoc
        if assoc is None or not assoc.is_established or pair not in self._proposed:
            opened = self._open(pair)
            if isinstance(opened, _Failure):
                return opened
            assoc = opened
        if not _carries(assoc, pair, exact):
            sop_class, syntax = (UID(uid).name for uid in pair)
            detail = f"{self.peer} accepts no presentation context for {sop_class} in {syntax}"
            return _Failure(StatusCategory.FAILURE, detail, False)
        return assoc

    def _open(self, pair: Pair) -> Association | _Failure:
        self._drop()
        ae = make_ae(self.calling_ae, self.settings)
        for sop_class, syntax in self._pairs:
            ae.add_requested_context(sop_class, [syntax])
        opened = open_association(ae, self.peer, self.settings, [pair[0]])
        if isinstance(opened, Refusal):
            return _Failure(opened.category, opened.detail, True)
        self._assoc, self._proposed, self._fresh = opened, frozenset(self._pairs), True
        self._opened += 1
        return opened

    def _remember(self, pair: Pair) -> None:
        self._pairs[pair] = None
        self._pairs.move_to_end(pair)
        while len(self._pairs) > MAX_PAIRS:
            self._pairs.popitem(last=False)

    def _drop(self) -> None:
        assoc, self._assoc = self._assoc, None
        self._proposed = frozenset()
        if assoc is not None:
            close_association(assoc)

    def _next_msg_id(self) -> int:
        self._msg_id = self._msg_id % _MAX_MESSAGE_ID + 1
        return self._msg_id


def _carries(assoc: Association, pair: Pair, exact: bool) -> bool:
    """Whether `assoc` has an accepted SCU context for `pair` (or one pynetdicom converts to)."""
    sop_class, syntax = UID(pair[0]), UID(pair[1])
    for context in assoc.accepted_contexts:
        if context.abstract_syntax != sop_class or not context.as_scu:
            continue
        accepted = UID(context.transfer_syntax[0])
        if accepted == syntax:
            return True
        if not exact and _convertible(syntax, accepted):
            return True
    return False


def _convertible(wanted: UID, accepted: UID) -> bool:
    if wanted.is_compressed or accepted.is_compressed:
        return False
    return bool(wanted.is_little_endian == accepted.is_little_endian)


def _answered(sop_uid: str, code: int, peer: Peer, seconds: float) -> StoreOutcome:
    category = StatusCategory.WARNING if code == _COERCION_WARNING else categorize(code)
    transient = category is StatusCategory.OUT_OF_RESOURCES
    detail = f"{peer} answered 0x{code:04X}"
    return StoreOutcome(sop_uid, category, code, detail, seconds, transient)


def _file_meta(path: Path) -> tuple[str, str, str] | str:
    """(SOP Instance, SOP Class, Transfer Syntax) from a file's meta, or why not."""
    try:
        meta = read_file_meta_info(path)
        return (
            str(meta.MediaStorageSOPInstanceUID),
            str(meta.MediaStorageSOPClassUID),
            str(meta.TransferSyntaxUID),
        )
    except (OSError, ValueError, AttributeError) as error:
        return f"cannot read the file meta of {path.name}: {error}"


def _meta_problem(meta: tuple[str, str, str] | str, expected: Pair) -> str:
    if isinstance(meta, str):
        return meta
    if meta[1:] != expected:
        return f"file meta says SOP class {meta[1]} in {meta[2]}, not {expected}"
    return ""
