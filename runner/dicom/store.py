"""C-STORE SCU: one long-lived association re-used for many stores; each store is a StoreOutcome.

Runs on the lean upper layer (runner.dicom.ul.requestor): one blocking socket, no polling
threads. Spooled files are sent without being decoded: `store_file` reads the file, checks
its meta and sends the data set bytes as they are on disk, fragmented into PDUs of the
destination's maximum length; `store_parts` sends data set bytes the caller has prepared
(a morphed header followed by the untouched rest, see runner.execute.sending.prepare). Both
need an accepted presentation context with exactly the instance's SOP class and transfer syntax,
which is why contexts are negotiated per (SOP class, transfer syntax) pair actually seen.
`store_dataset` encodes an in-memory dataset with pydicom, in the transfer syntax its file meta
names. No store changes the syntax: when the destination refuses it, the outcome says which
syntaxes it accepts for the SOP class (`accepted_syntaxes`), and the caller decides whether
a lossless transcode is possible (runner.dicom.transcode) and records it.

The association is opened lazily, on the first store. When an instance needs a pair not
proposed on the open association, it is re-opened with the extended set (at most
MAX_PAIRS pairs, the least recently used dropped first), plus two contexts for the SOP
class that say what the destination would take instead: one proposing the uncompressed
syntaxes, one the lossless compressions the runner can write (a destination that takes
only JPEG-LS, say, still accepts the association, and the refusal names what it takes).
A store that fails at transport level on a re-used association (the peer closed it
meanwhile, e.g. a restart) is retried once on a fresh association: C-STORE of the same SOP
Instance UID is idempotent.

transient: 0xA7xx (out of resources) and transport failures (no association, abort,
timeout), worth retrying later; every other failure (0xA9xx, 0xC0xx, 0x01xx, a context
the destination will not accept, an unreadable file) is permanent. Warnings (0xB000,
0xB006, 0xB007) mean stored, with the warning in `detail`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pydicom.uid import UID

from runner.dicom.part10 import MetaError, read_meta
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal
from runner.dicom.status import COERCION_WARNING, StatusCategory, categorize, status_text
from runner.dicom.transcode import WRITABLE_ENCODINGS
from runner.dicom.ul import datasets, dimse
from runner.dicom.ul.link import Buffer, Message
from runner.dicom.ul.requestor import ClientAssociation, Proposal, is_response_to, status_of

# 128 contexts at most: two alternative contexts for the SOP class of the instance at hand
# (uncompressed, lossless compressions), so 126 exact (SOP class, transfer syntax) pairs.
MAX_PAIRS = 126
_MAX_MESSAGE_ID = 0xFFFF
_DEFAULT_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")
_MEDIUM_PRIORITY = 0

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
    # the destination took the SOP class, but not in the instance's transfer syntax: these
    # are the syntaxes it accepted for the class (a lossless transcode may use one)
    accepted_syntaxes: tuple[str, ...] = ()

    @property
    def syntax_refused(self) -> bool:
        """The destination refused the instance's transfer syntax (not its SOP class)."""
        return bool(self.accepted_syntaxes)

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
    accepted_syntaxes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Store:
    """One C-STORE to make: the instance, and its data set as encoded in `pair[1]`."""

    pair: Pair
    sop_instance_uid: str
    parts: Sequence[Buffer]


class StoreClient:
    """C-STOREs to one peer over one re-used association; thread-safe (one store at a time).

    `while_waiting`, when set, is called once a request has gone and before its answer is
    read: the caller's use of the destination's time (a forwarding worker prepares its next
    instance there).
    """

    def __init__(self, peer: Peer, calling_ae: str, settings: DicomSettings,
                 while_waiting: Callable[[], None] | None = None) -> None:
        self.peer = peer
        self.calling_ae = calling_ae
        self.settings = settings
        self.while_waiting = while_waiting
        self._pairs: OrderedDict[Pair, None] = OrderedDict()
        self._assoc: ClientAssociation | None = None
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
        try:
            raw = path.read_bytes()
        except OSError as error:
            return StoreOutcome("", StatusCategory.FAILURE, None,
                                f"cannot read the file meta of {path.name}: {error}", 0.0, False)
        return self.store_part10(raw, sop_class_uid, transfer_syntax, path.name)

    def store_part10(self, raw: bytes | memoryview, sop_class_uid: str, transfer_syntax: str,
                     name: str = "the instance") -> StoreOutcome:
        """Send a Part-10 file's bytes as they are (a file read, or the memory spool's bytes
        in place): its data set after the meta, which must say `sop_class_uid` and
        `transfer_syntax`, else a permanent failure."""
        started = time.monotonic()
        try:
            meta = read_meta(raw)
        except MetaError as error:
            problem = f"cannot read the file meta of {name}: {error}"
            return StoreOutcome("", StatusCategory.FAILURE, None, problem,
                                time.monotonic() - started, False)
        if (meta.sop_class_uid, meta.transfer_syntax) != (sop_class_uid, transfer_syntax):
            problem = (f"file meta says SOP class {meta.sop_class_uid} in "
                       f"{meta.transfer_syntax}, not {(sop_class_uid, transfer_syntax)}")
            return StoreOutcome(meta.sop_instance_uid, StatusCategory.FAILURE, None, problem,
                                time.monotonic() - started, False)
        dataset = memoryview(raw)[meta.dataset_offset:]
        return self._store(_Store((sop_class_uid, transfer_syntax), meta.sop_instance_uid,
                                  [dataset]))

    def store_parts(self, sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str,
                    parts: Sequence[Buffer]) -> StoreOutcome:
        """Send a data set given as consecutive byte parts, encoded in `transfer_syntax`."""
        return self._store(_Store((sop_class_uid, transfer_syntax), sop_instance_uid, parts))

    def store_dataset(self, ds: Dataset) -> StoreOutcome:
        """Send an in-memory dataset; its file_meta.TransferSyntaxUID says how it is encoded."""
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is None or "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            raise ValueError("a dataset to store needs SOP Class/Instance UIDs and file meta")
        return self._store(_Store((str(ds.SOPClassUID), str(syntax)), str(ds.SOPInstanceUID),
                                  []), ds)

    def close(self) -> None:
        """Release the association, if one is open."""
        with self._lock:
            self._drop()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _store(self, store: _Store, ds: Dataset | None = None) -> StoreOutcome:
        started = time.monotonic()
        with self._lock:
            self._remember(store.pair)
            result = self._attempt(store, ds)
            if isinstance(result, _Failure) and result.retry_on_fresh:
                result = self._attempt(store, ds)
        seconds = time.monotonic() - started
        if isinstance(result, _Failure):
            return StoreOutcome(store.sop_instance_uid, result.category, None, result.detail,
                                seconds, result.transient, result.accepted_syntaxes)
        return _answered(store.sop_instance_uid, result, self.peer, seconds)

    def _attempt(self, store: _Store, ds: Dataset | None) -> int | _Failure:
        """One C-STORE: the status code, or why there is none."""
        assoc = self._association_for(store.pair)
        if isinstance(assoc, _Failure):
            return assoc
        context = _context(assoc, store.pair)
        if context is None:
            sop_class, syntax = (UID(uid).name for uid in store.pair)
            detail = f"{self.peer} accepts no presentation context for {sop_class} in {syntax}"
            accepted = tuple(ts for abstract, ts in assoc.accepted.values()
                             if abstract == store.pair[0])
            return _Failure(StatusCategory.FAILURE, detail, False, accepted_syntaxes=accepted)
        parts = store.parts
        if ds is not None:
            try:
                parts = [datasets.encode(ds, assoc.accepted[context][1])]
            except (ValueError, AttributeError, TypeError) as error:
                return _Failure(StatusCategory.FAILURE, f"cannot send: {error}", False)
        fresh, self._fresh = self._fresh, False
        msg_id = self._next_msg_id()
        command = dimse.encode({
            dimse.AFFECTED_SOP_CLASS: store.pair[0],
            dimse.COMMAND_FIELD: dimse.C_STORE_RQ,
            dimse.MESSAGE_ID: msg_id,
            dimse.PRIORITY: _MEDIUM_PRIORITY,
            dimse.DATASET_TYPE: dimse.HAS_DATASET,
            dimse.AFFECTED_SOP_INSTANCE: store.sop_instance_uid,
        })
        refused = assoc.send(context, command, parts)
        answer = refused if refused is not None else self._answer(assoc)
        if isinstance(answer, Refusal):
            self._drop()
            retry = not fresh and answer.category is StatusCategory.ABORTED
            return _Failure(answer.category, f"{self.peer}: {answer.detail}", True, retry)
        status = status_of(answer)
        if status is None or not is_response_to(answer, dimse.C_STORE_RSP, msg_id):
            self._drop()
            detail = (f"{self.peer}: answered a C-STORE with something else than its response "
                      f"(not a C-STORE-RSP to message {msg_id})")
            return _Failure(StatusCategory.ABORTED, detail, True)
        return status

    def _answer(self, assoc: ClientAssociation) -> Message | Refusal:
        """The answer to the request just sent, after `while_waiting` used the wait."""
        if self.while_waiting is not None:
            self.while_waiting()
        return assoc.receive()

    def _association_for(self, pair: Pair) -> ClientAssociation | _Failure:
        """The open association if it can carry `pair`, else a (re)opened one."""
        assoc = self._assoc
        if assoc is not None and assoc.is_established and pair in self._proposed:
            return assoc
        self._drop()
        proposals = [Proposal(sop_class, (syntax,)) for sop_class, syntax in self._pairs]
        proposals.append(Proposal(pair[0], _DEFAULT_SYNTAXES))
        proposals.append(Proposal(pair[0], WRITABLE_ENCODINGS))
        opened = ClientAssociation.open(self.peer, self.calling_ae, self.settings, proposals)
        if isinstance(opened, Refusal):
            return _Failure(opened.category, opened.detail, True)
        if opened.context_for(pair[0], None) is None:
            opened.release()
            detail = f"{self.peer} accepted no context for {pair[0]}"
            return _Failure(StatusCategory.NO_ASSOCIATION, detail, True)
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
            assoc.release()

    def _next_msg_id(self) -> int:
        self._msg_id = self._msg_id % _MAX_MESSAGE_ID + 1
        return self._msg_id


def _context(assoc: ClientAssociation, pair: Pair) -> int | None:
    """An accepted context for exactly `pair` (SOP class, transfer syntax)."""
    for context_id, accepted in assoc.accepted.items():
        if accepted == pair:
            return context_id
    return None


def _answered(sop_uid: str, code: int, peer: Peer, seconds: float) -> StoreOutcome:
    category = StatusCategory.WARNING if code == COERCION_WARNING else categorize(code)
    transient = category is StatusCategory.OUT_OF_RESOURCES
    detail = f"{peer} answered {status_text(code)}"
    return StoreOutcome(sop_uid, category, code, detail, seconds, transient)
