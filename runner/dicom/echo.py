"""C-ECHO: is a peer there and willing to talk to us? The answer is an EchoOutcome.

Runs on the lean upper layer (runner.dicom.ul.requestor), like C-FIND and C-MOVE: a C-ECHO
at the start of a run costs a millisecond or two, and a run needs no pynetdicom.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal
from runner.dicom.sop import VERIFICATION
from runner.dicom.status import StatusCategory, categorize, status_text
from runner.dicom.ul import dimse
from runner.dicom.ul.requestor import (
    LITTLE_ENDIAN_SYNTAXES,
    ClientAssociation,
    Proposal,
    is_response_to,
    status_of,
)

C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
_MESSAGE_ID = 1


@dataclass(frozen=True, slots=True)
class EchoOutcome:
    """The result of one C-ECHO: ok only when the peer answered with success."""

    ok: bool
    category: StatusCategory
    detail: str
    seconds: float


def c_echo(peer: Peer, calling_ae: str, settings: DicomSettings) -> EchoOutcome:
    """Send one C-ECHO to `peer` as `calling_ae`; never raises for peer failures."""
    started = time.monotonic()
    assoc = ClientAssociation.open(peer, calling_ae, settings,
                                   [Proposal(str(VERIFICATION), LITTLE_ENDIAN_SYNTAXES)])
    if isinstance(assoc, Refusal):
        return _outcome(assoc.category, assoc.detail, started)
    try:
        context = assoc.context_for(str(VERIFICATION), None)
        if context is None:
            return _outcome(StatusCategory.NO_ASSOCIATION,
                            f"{peer} accepted no context for Verification", started)
        answer = assoc.exchange(context, dimse.encode({
            dimse.AFFECTED_SOP_CLASS: str(VERIFICATION),
            dimse.COMMAND_FIELD: C_ECHO_RQ,
            dimse.MESSAGE_ID: _MESSAGE_ID,
            dimse.DATASET_TYPE: dimse.NO_DATASET,
        }))
        if isinstance(answer, Refusal):
            return _outcome(answer.category, answer.detail, started)
        code = status_of(answer)
        if not is_response_to(answer, C_ECHO_RSP, _MESSAGE_ID) or code is None:
            assoc.abort()
            return _outcome(StatusCategory.ABORTED,
                            f"{peer} answered a C-ECHO with something else than its response",
                            started)
        return _outcome(categorize(code), f"{peer} answered {status_text(code)}", started)
    finally:
        assoc.release()


def _outcome(category: StatusCategory, detail: str, started: float) -> EchoOutcome:
    ok = category is StatusCategory.SUCCESS
    return EchoOutcome(ok, category, detail, time.monotonic() - started)
