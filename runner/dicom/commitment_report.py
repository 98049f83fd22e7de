"""Storage Commitment results: the N-EVENT-REPORT an SCP sends back, read into a
CommitmentReport. The listener (runner.dicom.listener) takes reports on associations the
destination opens; runner.dicom.commitment, which requests commitment, reads those sent on
its own association. Both on the lean upper layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.uid import UID

from runner.dicom.status import NO_SUCH_SOP_INSTANCE, PROCESSING_FAILURE, SUCCESS

LOGGER = logging.getLogger(__name__)

STORAGE_COMMITMENT_PUSH = UID("1.2.840.10008.1.20.1")
STORAGE_COMMITMENT_INSTANCE = UID("1.2.840.10008.1.20.1.1")  # the well-known SOP Instance
REQUEST_COMMITMENT_ACTION = 1
EVENT_ALL_COMMITTED = 1
EVENT_SOME_FAILED = 2
_REPORT_EVENTS = frozenset({EVENT_ALL_COMMITTED, EVENT_SOME_FAILED})


@dataclass(frozen=True, slots=True)
class CommitmentReport:
    """What the destination committed to: SOP Instance UIDs, and failure reasons by UID."""

    transaction_uid: str
    committed: frozenset[str]
    failed: dict[str, int] = field(default_factory=dict)


class ReportError(ValueError):
    """An N-EVENT-REPORT that is not a readable storage commitment result."""


def parse_report(event_type: int, info: Dataset | None) -> CommitmentReport:
    """Read a storage commitment N-EVENT-REPORT (event type 1 or 2); ReportError if unusable."""
    if event_type not in _REPORT_EVENTS:
        raise ReportError(f"not a storage commitment result: event type {event_type}")
    if info is None:
        raise ReportError("storage commitment report without Event Information")
    try:
        transaction = str(info.TransactionUID)
        committed = frozenset(
            str(item.ReferencedSOPInstanceUID) for item in info.get("ReferencedSOPSequence", [])
        )
        failed = {
            str(item.ReferencedSOPInstanceUID): int(item.get("FailureReason", PROCESSING_FAILURE))
            for item in info.get("FailedSOPSequence", [])
        }
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise ReportError(f"unreadable storage commitment report: {error}") from error
    if not transaction:
        raise ReportError("storage commitment report without Transaction UID")
    return CommitmentReport(transaction, committed, failed)


def handle_report(sop_class_uid: str, event_type: int, info: Dataset | None,
                  deliver: Callable[[CommitmentReport], None]) -> int:
    """Parse an N-EVENT-REPORT, pass a storage commitment result to `deliver`; the status
    to answer (0x0112 when it is no commitment report, 0x0110 when it is unusable)."""
    if sop_class_uid != STORAGE_COMMITMENT_PUSH:
        return NO_SUCH_SOP_INSTANCE  # not a commitment report
    try:
        report = parse_report(event_type, info)
    except ReportError as error:
        LOGGER.warning("unusable storage commitment report: %s", error)
        return PROCESSING_FAILURE
    deliver(report)
    return SUCCESS
