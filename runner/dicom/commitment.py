"""Storage Commitment Push Model SCU: the N-ACTION request and the N-EVENT-REPORT it brings back.

Runs on the lean upper layer (runner.dicom.ul.requestor), like C-ECHO, C-FIND and C-MOVE.
The SCP answers a request asynchronously with an N-EVENT-REPORT: either on the requesting
association, while it is still open (handled here; `wait_for_report` keeps it open, and a
report sent even before the N-ACTION response is taken too), or on a new association it
opens to the requester's AE title (Orthanc does this, and needs that AE in its
`DicomModalities`). The listener accepts those (runner.dicom.listener) and hands them to the
same reader, `handle_report`. Every N-EVENT-REPORT received here is answered with the status
`handle_report` gives (a report of another transaction is answered, not kept).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.uid import generate_uid

from runner.dicom.commitment_report import (
    REQUEST_COMMITMENT_ACTION,
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_PUSH,
    CommitmentReport,
    handle_report,
)
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal
from runner.dicom.status import (
    PROCESSING_FAILURE,
    UNRECOGNISED_OPERATION,
    StatusCategory,
    categorize,
    status_text,
)
from runner.dicom.ul import datasets, dimse
from runner.dicom.ul.link import Message
from runner.dicom.ul.requestor import (
    LITTLE_ENDIAN_SYNTAXES,
    ClientAssociation,
    Proposal,
    is_response_to,
    status_of,
)

LOGGER = logging.getLogger(__name__)

_MESSAGE_ID = 1


@dataclass(frozen=True, slots=True)
class CommitmentRequest:
    """How an N-ACTION commitment request went; `report` when it came on that association."""

    transaction_uid: str
    category: StatusCategory
    status: int | None
    detail: str
    seconds: float
    report: CommitmentReport | None = None

    @property
    def ok(self) -> bool:
        """True when the SCP accepted the request (the report itself comes later)."""
        return self.category.is_ok


def commitment_request_dataset(transaction_uid: str, refs: Sequence[tuple[str, str]]) -> Dataset:
    """The N-ACTION Action Information: the transaction and (SOP class, SOP instance) refs."""
    info = Dataset()
    info.TransactionUID = transaction_uid
    items = []
    for sop_class_uid, sop_instance_uid in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class_uid
        item.ReferencedSOPInstanceUID = sop_instance_uid
        items.append(item)
    info.ReferencedSOPSequence = items
    return info


def request_commitment(
    peer: Peer,
    calling_ae: str,
    settings: DicomSettings,
    refs: Sequence[tuple[str, str]],
    *,
    wait_for_report: float = 0.0,
) -> CommitmentRequest:
    """Ask `peer` to commit to `refs` ((SOP class UID, SOP instance UID) pairs).

    A new Transaction UID identifies the request. With `wait_for_report` > 0 the
    association stays open up to that many seconds for a report sent on it. Never raises
    for peer failures.
    """
    if not refs:
        raise ValueError("a storage commitment request needs at least one instance")
    started = time.monotonic()
    transaction = str(generate_uid())
    assoc = ClientAssociation.open(peer, calling_ae, settings,
                                   [Proposal(str(STORAGE_COMMITMENT_PUSH),
                                             LITTLE_ENDIAN_SYNTAXES)])
    if isinstance(assoc, Refusal):
        return CommitmentRequest(transaction, assoc.category, None, assoc.detail, _since(started))
    try:
        return _request_on(assoc, transaction, refs, wait_for_report, started)
    finally:
        assoc.release()


class _Exchange:
    """One commitment request on an association: the reports of its transaction it got."""

    def __init__(self, assoc: ClientAssociation, transaction: str) -> None:
        self.assoc = assoc
        self.transaction = transaction
        self.report: CommitmentReport | None = None

    def deliver(self, report: CommitmentReport) -> None:
        if report.transaction_uid == self.transaction and self.report is None:
            self.report = report

    def answer(self, message: Message) -> Refusal | None:
        """Answer a request the SCP sent us (an N-EVENT-REPORT, or anything else: refused)."""
        field = dimse.number(message.command, dimse.COMMAND_FIELD) or 0
        if field & 0x8000:
            LOGGER.warning("%s sent a response nothing asked for: 0x%04X", self.assoc.peer, field)
            return None
        if field != dimse.N_EVENT_REPORT_RQ:
            return self.assoc.send(message.context_id, dimse.response(
                field | 0x8000, message.command, UNRECOGNISED_OPERATION))
        event_type = dimse.number(message.command, dimse.EVENT_TYPE)
        status = self._report_status(message, event_type or 0)
        extra: dict[int, int | str | bytes] = {}
        if event_type is not None:
            extra[dimse.EVENT_TYPE] = event_type
        return self.assoc.send(message.context_id, dimse.response(
            dimse.N_EVENT_REPORT_RSP, message.command, status, extra=extra))

    def _report_status(self, message: Message, event_type: int) -> int:
        _abstract, syntax = self.assoc.accepted.get(message.context_id, ("", ""))
        try:
            info = datasets.decode(message.dataset(), syntax) if message.fragments else None
        except Exception as error:  # pydicom raises many kinds on garbage
            LOGGER.warning("unreadable N-EVENT-REPORT from %s: %s", self.assoc.peer, error)
            return PROCESSING_FAILURE
        return handle_report(dimse.text(message.command, dimse.AFFECTED_SOP_CLASS),
                             event_type, info, self.deliver)


def _request_on(
    assoc: ClientAssociation,
    transaction: str,
    refs: Sequence[tuple[str, str]],
    wait_for_report: float,
    started: float,
) -> CommitmentRequest:
    peer = assoc.peer
    context = assoc.context_for(str(STORAGE_COMMITMENT_PUSH), None)
    if context is None:
        return CommitmentRequest(transaction, StatusCategory.NO_ASSOCIATION, None,
                                 f"{peer} accepted no context for {STORAGE_COMMITMENT_PUSH}",
                                 _since(started))
    exchange = _Exchange(assoc, transaction)
    answer = _send_action(assoc, context, exchange, refs)
    if isinstance(answer, Refusal):
        return CommitmentRequest(transaction, answer.category, None, answer.detail,
                                 _since(started))
    category = categorize(answer)
    if category.is_ok and wait_for_report > 0:
        _await_report(exchange, time.monotonic() + wait_for_report)
    detail = f"{peer} answered the commitment request {status_text(answer)} for {len(refs)} " \
             f"instances"
    return CommitmentRequest(transaction, category, answer, detail, _since(started),
                             exchange.report)


def _send_action(assoc: ClientAssociation, context: int, exchange: _Exchange,
                 refs: Sequence[tuple[str, str]]) -> int | Refusal:
    """Send the N-ACTION and read up to its response (answering any report before it);
    the response's status."""
    _abstract, syntax = assoc.accepted[context]
    info = datasets.encode(commitment_request_dataset(exchange.transaction, refs), syntax)
    sent = assoc.send(context, dimse.encode({
        dimse.COMMAND_FIELD: dimse.N_ACTION_RQ,
        dimse.MESSAGE_ID: _MESSAGE_ID,
        dimse.DATASET_TYPE: dimse.HAS_DATASET,
        dimse.REQUESTED_SOP_CLASS: str(STORAGE_COMMITMENT_PUSH),
        dimse.REQUESTED_SOP_INSTANCE: str(STORAGE_COMMITMENT_INSTANCE),
        dimse.ACTION_TYPE: REQUEST_COMMITMENT_ACTION,
    }), [info])
    if sent is not None:
        return sent
    while True:
        message = assoc.receive()
        if isinstance(message, Refusal):
            return message
        if is_response_to(message, dimse.N_ACTION_RSP, _MESSAGE_ID):
            code = status_of(message)
            if code is not None:
                return code
        elif (dimse.number(message.command, dimse.COMMAND_FIELD) or 0) < 0x8000:
            refused = exchange.answer(message)
            if refused is not None:
                return refused
            continue
        assoc.abort()
        return Refusal(StatusCategory.ABORTED, f"{assoc.peer} answered the commitment request "
                                               "with something else than its response")


def _await_report(exchange: _Exchange, deadline: float) -> None:
    """Answer what the SCP sends on the association until its report came or `deadline`."""
    while exchange.report is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        message = exchange.assoc.receive_within(left)
        if message is None or isinstance(message, Refusal):
            return
        if exchange.answer(message) is not None:
            return


def _since(started: float) -> float:
    return time.monotonic() - started
