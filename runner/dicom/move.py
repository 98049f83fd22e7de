"""C-MOVE (Study Root) of a whole study or of chosen instances; how it ended is a MoveOutcome.

The C-MOVE request carries the caller's Message ID, which the source repeats as the Move
Originator Message ID of every C-STORE it sends for this retrieve: that is how the
listener ties arriving instances to the retrieve that asked for them.

An image-level retrieve (repair) is sent as one C-MOVE per series, on one association and
with the same Message ID: the Study Root hierarchy allows a list of SOP Instance UIDs only
below a single series. Their counts and failed UIDs are added up into one outcome.

A MoveHandle lets another thread (the stall watchdog) abort the association, which ends
the retrieve with category ABORTED, or ask the source to stop with C-CANCEL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pydicom import Dataset
from pynetdicom.association import Association

from runner.dicom.ae import make_ae
from runner.dicom.association import Refusal, close_association, lost_association, open_association
from runner.dicom.peer import DicomSettings, Peer, check_ae_title
from runner.dicom.sop import STUDY_ROOT_MOVE
from runner.dicom.status import StatusCategory, categorize

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
        self._assoc: Association | None = None
        self._msg_id = 0
        self._aborted = False

    @property
    def aborted(self) -> bool:
        """True once abort() has been called."""
        with self._lock:
            return self._aborted

    def abort(self) -> None:
        """Abort the retrieve's association (now, or as soon as it is open)."""
        with self._lock:
            self._aborted = True
            assoc = self._assoc
        if assoc is not None:
            _abort_and_wake(assoc)

    def cancel(self) -> bool:
        """Send C-CANCEL for the running retrieve; False when none is running."""
        with self._lock:
            assoc, msg_id = self._assoc, self._msg_id
        if assoc is None or not assoc.is_established:
            return False
        try:
            assoc.send_c_cancel(msg_id, query_model=STUDY_ROOT_MOVE)
        except (RuntimeError, ValueError):  # the association ended meanwhile
            return False
        return True

    def _attach(self, assoc: Association, msg_id: int) -> bool:
        with self._lock:
            self._assoc, self._msg_id = assoc, msg_id
            return not self._aborted

    def _detach(self) -> None:
        with self._lock:
            self._assoc = None


def _abort_and_wake(assoc: Association) -> None:
    """Abort `assoc` and wake the thread waiting for its next DIMSE message.

    pynetdicom's local abort does not wake a reader blocked in `dimse.get_msg` (it would
    wait for the whole DIMSE timeout); the (None, None) item is what pynetdicom itself
    queues when the peer aborts, and reads as "no response".
    """
    assoc.abort()
    assoc.dimse.msg_queue.put((None, None))


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
    assoc = open_association(make_ae(calling_ae, settings), peer, settings, [STUDY_ROOT_MOVE])
    if isinstance(assoc, Refusal):
        return _transport_outcome(assoc.category, assoc.detail, _Tally(), started)
    try:
        if not handle._attach(assoc, msg_id):
            assoc.abort()
            return _transport_outcome(StatusCategory.ABORTED, "aborted", _Tally(), started)
        move = _Move(assoc, peer, settings, move_destination_ae, msg_id, on_pending, handle)
        return move.run(_identifiers(study_uid, sop_instances), started)
    finally:
        handle._detach()
        close_association(assoc)


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

    assoc: Association
    peer: Peer
    settings: DicomSettings
    destination: str
    msg_id: int
    on_pending: Callable[[MoveProgress], None] | None
    handle: MoveHandle

    def run(self, identifiers: list[tuple[Dataset, int]], started: float) -> MoveOutcome:
        tally = _Tally()
        final: tuple[StatusCategory, int, Dataset] | None = None
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
    ) -> tuple[StatusCategory, int, Dataset] | Refusal:
        """Send one C-MOVE and follow its responses to the final one."""
        last = time.monotonic()
        responses = self.assoc.send_c_move(
            identifier, self.destination, STUDY_ROOT_MOVE, msg_id=self.msg_id
        )
        for status, answer in _responses(responses):
            if "Status" not in status:
                return self._lost(last)
            last = time.monotonic()
            category = categorize(int(status.Status))
            if category is StatusCategory.PENDING:
                self._report(status, tally, later)
                continue
            _add_final(tally, status, answer)
            return category, int(status.Status), status
        return self._lost(last)

    def _lost(self, last: float) -> Refusal:
        if self.handle.aborted:
            return Refusal(StatusCategory.ABORTED, "the retrieve was aborted by the runner")
        lost = lost_association(self.assoc, last, self.settings)
        return Refusal(lost.category, f"{self.peer}: {lost.detail}")

    def _report(self, status: Dataset, tally: _Tally, later: int) -> None:
        remaining = _count(status, "NumberOfRemainingSuboperations")
        tally.progress = MoveProgress(
            remaining=None if remaining is None else remaining + later,
            completed=tally.completed + (_count(status, "NumberOfCompletedSuboperations") or 0),
            failed=tally.failed + (_count(status, "NumberOfFailedSuboperations") or 0),
            warning=tally.warning + (_count(status, "NumberOfWarningSuboperations") or 0),
        )
        if self.on_pending is not None:
            self.on_pending(tally.progress)

    def _outcome(
        self, final: tuple[StatusCategory, int, Dataset], tally: _Tally, started: float
    ) -> MoveOutcome:
        category, code, status = final
        detail = f"{self.peer} answered 0x{code:04X}"
        if category is StatusCategory.MOVE_DESTINATION_UNKNOWN:
            detail += f": it does not know the move destination {self.destination}"
        comment = status.get("ErrorComment")
        if comment:
            detail += f" ({comment})"
        return MoveOutcome(
            category,
            code,
            tally.completed if tally.seen else None,
            tally.failed if tally.seen else None,
            tally.warning if tally.seen else None,
            _count(status, "NumberOfRemainingSuboperations"),
            tuple(tally.failed_uids),
            detail,
            time.monotonic() - started,
        )


def _responses(
    responses: Iterator[tuple[Dataset, Dataset | None]],
) -> Iterator[tuple[Dataset, Dataset | None]]:
    """The responses; a generator that ends without a final answer yields an empty status."""
    try:
        yield from responses
    except (RuntimeError, ValueError):  # the association ended under pynetdicom's feet
        yield Dataset(), None


def _add_final(tally: _Tally, status: Dataset, answer: Dataset | None) -> None:
    counts = [
        _count(status, name)
        for name in (
            "NumberOfCompletedSuboperations",
            "NumberOfFailedSuboperations",
            "NumberOfWarningSuboperations",
        )
    ]
    if any(count is not None for count in counts):
        tally.seen = True
    tally.completed += counts[0] or 0
    tally.failed += counts[1] or 0
    tally.warning += counts[2] or 0
    tally.failed_uids.extend(_failed_uids(answer))


def _failed_uids(answer: Dataset | None) -> list[str]:
    if answer is None:
        return []
    value = answer.get("FailedSOPInstanceUIDList")
    if not value:
        return []
    values = str(value).split("\\") if isinstance(value, str) else [str(uid) for uid in value]
    return [uid.strip("\0 ") for uid in values if uid.strip("\0 ")]


def _count(status: Dataset, keyword: str) -> int | None:
    value = status.get(keyword)
    return None if value is None else int(value)


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
