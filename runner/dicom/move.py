"""C-MOVE (Study Root) of a whole study or of chosen instances; how it ended is a MoveOutcome.

The C-MOVE request carries the caller's Message ID, which the source repeats as the Move
Originator Message ID of every C-STORE it sends for this retrieve: that is how the
listener ties arriving instances to the retrieve that asked for them.

An image-level retrieve (repair) is sent as one C-MOVE per series, on one association and
with the same Message ID: the Study Root hierarchy allows a list of SOP Instance UIDs only
below a single series. Their counts and failed UIDs are added up into one outcome.

A MoveHandle lets another thread (the stall watchdog) abort the association, which ends
the retrieve with category ABORTED, or ask the source to stop with C-CANCEL.

Runs on the lean upper layer (runner.dicom.ul.requestor): the thread waiting for the
source's responses blocks in `recv`, so a running retrieve costs no CPU between responses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydicom import Dataset

from runner.dicom.peer import DicomSettings, Peer, check_ae_title
from runner.dicom.refusal import Refusal
from runner.dicom.sop import STUDY_ROOT_MOVE
from runner.dicom.status import StatusCategory, categorize, status_text
from runner.dicom.ul import datasets, dimse
from runner.dicom.ul.link import Message
from runner.dicom.ul.requestor import (
    LITTLE_ENDIAN_SYNTAXES,
    ClientAssociation,
    Proposal,
    is_response_to,
)

C_MOVE_RQ, C_MOVE_RSP = 0x0021, 0x8021
_REMAINING, _COMPLETED, _FAILED, _WARNING = 0x1020, 0x1021, 0x1022, 0x1023

_MAX_MESSAGE_ID = 0xFFFF


@dataclass(frozen=True, slots=True)
class MoveProgress:
    """The sub-operation counts of a pending C-MOVE response (None: the source did not say)."""

    remaining: int | None
    completed: int | None
    failed: int | None
    warning: int | None


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    """How a retrieve ended: category, final status and the counts of the last response.

    `status` is None when the exchange ended at transport level (no association, abort,
    timeout). `failed_uids` comes from the Failed SOP Instance UID List of the final answer.
    """

    category: StatusCategory
    status: int | None
    completed: int | None
    failed: int | None
    warning: int | None
    remaining: int | None
    failed_uids: tuple[str, ...]
    detail: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the source reports every sub-operation done (success or warning)."""
        return self.category.is_ok


class MoveHandle:
    """Abort or cancel a running c_move from another thread (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._assoc: ClientAssociation | None = None
        self._context = 0
        self._msg_id = 0
        self._aborted = False

    @property
    def aborted(self) -> bool:
        """True once abort() has been called."""
        with self._lock:
            return self._aborted

    def abort(self) -> None:
        """Abort the retrieve's association (now, or as soon as it is open); the thread
        waiting for its responses wakes at once."""
        with self._lock:
            self._aborted = True
            assoc = self._assoc
        if assoc is not None:
            assoc.abort()

    def cancel(self) -> bool:
        """Send C-CANCEL for the running retrieve; False when none is running."""
        with self._lock:
            assoc, context, msg_id = self._assoc, self._context, self._msg_id
        if assoc is None or not assoc.is_established:
            return False
        command = dimse.encode({dimse.COMMAND_FIELD: dimse.C_CANCEL_RQ,
                                dimse.RESPONDED_TO: msg_id,
                                dimse.DATASET_TYPE: dimse.NO_DATASET})
        return assoc.send(context, command) is None

    def _attach(self, assoc: ClientAssociation, context: int, msg_id: int) -> bool:
        with self._lock:
            self._assoc, self._context, self._msg_id = assoc, context, msg_id
            return not self._aborted

    def _detach(self) -> None:
        with self._lock:
            self._assoc = None


@dataclass
class _Tally:
    """Counts added up over the C-MOVEs of one retrieve."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)
    seen: bool = False  # a final response carried counts
    progress: MoveProgress | None = None  # the last pending response, counts added up


def c_move(
    peer: Peer,
    calling_ae: str,
    settings: DicomSettings,
    move_destination_ae: str,
    study_uid: str,
    *,
    msg_id: int,
    sop_instances: Sequence[tuple[str, str]] | None = None,
    on_pending: Callable[[MoveProgress], None] | None = None,
    handle: MoveHandle | None = None,
) -> MoveOutcome:
    """Retrieve `study_uid` (or only `sop_instances`, (series UID, SOP UID) pairs) from `peer`
    to `move_destination_ae`, with `msg_id` as the C-MOVE Message ID. Never raises for peer
    failures; returns within the configured timeouts."""
    check_ae_title(move_destination_ae)
    if not 0 < msg_id <= _MAX_MESSAGE_ID:
        raise ValueError(f"msg_id must be 1..65535: {msg_id}")
    if sop_instances is not None and not sop_instances:
        raise ValueError("sop_instances, when given, must name at least one instance")
    started = time.monotonic()
    handle = handle or MoveHandle()
    assoc = ClientAssociation.open(peer, calling_ae, settings,
                                   [Proposal(str(STUDY_ROOT_MOVE), LITTLE_ENDIAN_SYNTAXES)])
    if isinstance(assoc, Refusal):
        return _transport_outcome(assoc.category, assoc.detail, _Tally(), started)
    context = assoc.context_for(str(STUDY_ROOT_MOVE), None)
    if context is None:
        assoc.release()
        detail = f"{peer} accepted no context for {STUDY_ROOT_MOVE}"
        return _transport_outcome(StatusCategory.NO_ASSOCIATION, detail, _Tally(), started)
    try:
        if not handle._attach(assoc, context, msg_id):
            assoc.abort()
            return _transport_outcome(StatusCategory.ABORTED, "aborted", _Tally(), started)
        move = _Move(assoc, context, peer, move_destination_ae, msg_id, on_pending, handle)
        return move.run(_identifiers(study_uid, sop_instances), started)
    finally:
        handle._detach()
        assoc.release()


def _identifiers(
    study_uid: str, sop_instances: Sequence[tuple[str, str]] | None
) -> list[tuple[Dataset, int]]:
    """The C-MOVE identifiers, each with the number of instances it names (0: unknown)."""
    if sop_instances is None:
        study = Dataset()
        study.QueryRetrieveLevel = "STUDY"
        study.StudyInstanceUID = study_uid
        return [(study, 0)]
    by_series: dict[str, list[str]] = {}
    for series_uid, sop_uid in sop_instances:
        by_series.setdefault(series_uid, []).append(sop_uid)
    identifiers = []
    for series_uid, sop_uids in by_series.items():
        image = Dataset()
        image.QueryRetrieveLevel = "IMAGE"
        image.StudyInstanceUID = study_uid
        image.SeriesInstanceUID = series_uid
        image.SOPInstanceUID = sop_uids
        identifiers.append((image, len(sop_uids)))
    return identifiers


@dataclass
class _Move:
    """One retrieve on an open association: its C-MOVEs, their responses, the outcome."""

    assoc: ClientAssociation
    context: int
    peer: Peer
    destination: str
    msg_id: int
    on_pending: Callable[[MoveProgress], None] | None
    handle: MoveHandle

    def run(self, identifiers: list[tuple[Dataset, int]], started: float) -> MoveOutcome:
        tally = _Tally()
        final: tuple[StatusCategory, int, Message] | None = None
        for index, (identifier, _count) in enumerate(identifiers):
            later = sum(count for _, count in identifiers[index + 1 :])
            answer = self._one(identifier, tally, later)
            if isinstance(answer, Refusal):
                return _transport_outcome(answer.category, answer.detail, tally, started)
            if final is None or final[0] is StatusCategory.SUCCESS:
                final = answer
            if not answer[0].is_ok:
                break
        assert final is not None
        return self._outcome(final, tally, started)

    def _one(
        self, identifier: Dataset, tally: _Tally, later: int
    ) -> tuple[StatusCategory, int, Message] | Refusal:
        """Send one C-MOVE and follow its responses to the final one."""
        command = dimse.encode({
            dimse.AFFECTED_SOP_CLASS: str(STUDY_ROOT_MOVE),
            dimse.COMMAND_FIELD: C_MOVE_RQ,
            dimse.MESSAGE_ID: self.msg_id,
            dimse.PRIORITY: 0,
            dimse.DATASET_TYPE: dimse.HAS_DATASET,
            dimse.MOVE_DESTINATION: self.destination,
        })
        encoded = datasets.encode(identifier, self.assoc.accepted[self.context][1])
        sent = self.assoc.send(self.context, command, [encoded])
        if isinstance(sent, Refusal):
            return self._lost(sent)
        while True:
            message = self.assoc.receive()
            if isinstance(message, Refusal):
                return self._lost(message)
            if not is_response_to(message, C_MOVE_RSP, self.msg_id):
                continue  # not ours (a stray message): keep waiting for our response
            code = dimse.number(message.command, dimse.STATUS)
            if code is None:
                return self._lost(Refusal(StatusCategory.ABORTED,
                                          "a C-MOVE response without a status"))
            category = categorize(code)
            if category is StatusCategory.PENDING:
                self._report(message, tally, later)
                continue
            _add_final(tally, message, self.assoc.accepted[self.context][1])
            return category, code, message

    def _lost(self, refusal: Refusal) -> Refusal:
        if self.handle.aborted:
            return Refusal(StatusCategory.ABORTED, "the retrieve was aborted by the runner")
        return Refusal(refusal.category, f"{self.peer}: {refusal.detail}")

    def _report(self, message: Message, tally: _Tally, later: int) -> None:
        remaining = _count(message, _REMAINING)
        tally.progress = MoveProgress(
            remaining=None if remaining is None else remaining + later,
            completed=tally.completed + (_count(message, _COMPLETED) or 0),
            failed=tally.failed + (_count(message, _FAILED) or 0),
            warning=tally.warning + (_count(message, _WARNING) or 0),
        )
        if self.on_pending is not None:
            self.on_pending(tally.progress)

    def _outcome(
        self, final: tuple[StatusCategory, int, Message], tally: _Tally, started: float
    ) -> MoveOutcome:
        category, code, message = final
        detail = f"{self.peer} answered {status_text(code)}"
        if category is StatusCategory.MOVE_DESTINATION_UNKNOWN:
            detail += f": it does not know the move destination {self.destination}"
        comment = dimse.text(message.command, dimse.ERROR_COMMENT)
        if comment:
            detail += f" ({comment})"
        return MoveOutcome(
            category,
            code,
            tally.completed if tally.seen else None,
            tally.failed if tally.seen else None,
            tally.warning if tally.seen else None,
            _count(message, _REMAINING),
            tuple(tally.failed_uids),
            detail,
            time.monotonic() - started,
        )


def _add_final(tally: _Tally, message: Message, transfer_syntax: str) -> None:
    counts = [_count(message, number) for number in (_COMPLETED, _FAILED, _WARNING)]
    if any(count is not None for count in counts):
        tally.seen = True
    tally.completed += counts[0] or 0
    tally.failed += counts[1] or 0
    tally.warning += counts[2] or 0
    tally.failed_uids.extend(_failed_uids(message, transfer_syntax))


def _failed_uids(message: Message, transfer_syntax: str) -> list[str]:
    """The Failed SOP Instance UID List of a final response's identifier, if it has one."""
    if not message.fragments:
        return []
    try:
        answer = datasets.decode(message.dataset(), transfer_syntax)
        value = answer.get("FailedSOPInstanceUIDList")
    except Exception:  # pydicom raises many kinds on garbage: the list is a courtesy
        return []
    if not value:
        return []
    values = str(value).split("\\") if isinstance(value, str) else [str(uid) for uid in value]
    return [uid.strip("\0 ") for uid in values if uid.strip("\0 ")]


def _count(message: Message, number: int) -> int | None:
    return dimse.number(message.command, number)


def _transport_outcome(
    category: StatusCategory, detail: str, tally: _Tally, started: float
) -> MoveOutcome:
    """An outcome without a final response: the counts are the last pending response's."""
    progress = tally.progress or MoveProgress(None, None, None, None)
    return MoveOutcome(
        category,
        None,
        progress.completed,
        progress.failed,
        progress.warning,
        progress.remaining,
        tuple(tally.failed_uids),
        detail,
        time.monotonic() - started,
    )
