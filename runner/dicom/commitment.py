"""Storage Commitment Push Model SCU: the N-ACTION request and the N-EVENT-REPORT it brings back.

The SCP answers a request asynchronously with an N-EVENT-REPORT: either on the requesting
association, while it is still open (handled here; `wait_for_report` keeps it open), or on
a new association it opens to the requester's AE title (Orthanc does this, and needs that
AE in its `DicomModalities`). The listener accepts those (runner.dicom.listener) and hands
them to the same parser, `parse_report`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from pydicom import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import N_EVENT_REPORT

from runner.dicom.ae import make_ae
from runner.dicom.association import close_association, lost_association, open_association
from runner.dicom.commitment_report import (
    REQUEST_COMMITMENT_ACTION,
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_PUSH,
    CommitmentReport,
    handle_report,
)
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal
from runner.dicom.status import StatusCategory, categorize, status_text

LOGGER = logging.getLogger(__name__)

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


def report_handler(
    deliver: Callable[[CommitmentReport], None],
) -> Callable[[evt.Event], tuple[int, None]]:
    """An EVT_N_EVENT_REPORT handler that parses reports and passes them to `deliver`."""

    def handle(event: evt.Event) -> tuple[int, None]:
        request = cast(N_EVENT_REPORT, event.request)
        status = handle_report(str(request.AffectedSOPClassUID),
                               int(request.EventTypeID or 0), event.event_information, deliver)
        return status, None

    return handle


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
    ae = make_ae(calling_ae, settings)
    assoc = open_association(ae, peer, settings, [STORAGE_COMMITMENT_PUSH])
    if isinstance(assoc, Refusal):
        return CommitmentRequest(transaction, assoc.category, None, assoc.detail, _since(started))
    try:
        return _request_on(assoc, peer, settings, transaction, refs, wait_for_report, started)
    finally:
        close_association(assoc)


def _request_on(
    assoc: Association,
    peer: Peer,
    settings: DicomSettings,
    transaction: str,
    refs: Sequence[tuple[str, str]],
    wait_for_report: float,
    started: float,
) -> CommitmentRequest:
    reports: list[CommitmentReport] = []
    arrived = threading.Event()

    def deliver(report: CommitmentReport) -> None:
        if report.transaction_uid == transaction:
            reports.append(report)
            arrived.set()

    assoc.bind(evt.EVT_N_EVENT_REPORT, report_handler(deliver))
    sent = time.monotonic()
    status, _reply = assoc.send_n_action(
        commitment_request_dataset(transaction, refs),
        REQUEST_COMMITMENT_ACTION,
        STORAGE_COMMITMENT_PUSH,
        STORAGE_COMMITMENT_INSTANCE,
    )
    if "Status" not in status:
        lost = lost_association(assoc, sent, settings)
        return CommitmentRequest(transaction, lost.category, None, lost.detail, _since(started))
    code = int(status.Status)
    category = categorize(code)
    if category.is_ok and wait_for_report > 0:
        arrived.wait(wait_for_report)
    detail = f"{peer} answered the commitment request {status_text(code)} for {len(refs)} instances"
    report = reports[0] if reports else None
    return CommitmentRequest(transaction, category, code, detail, _since(started), report)


def _since(started: float) -> float:
    return time.monotonic() - started
