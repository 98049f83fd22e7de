"""C-ECHO: is a peer there and willing to talk to us? The answer is an EchoOutcome."""

from __future__ import annotations

import time
from dataclasses import dataclass

from runner.dicom.ae import make_ae
from runner.dicom.association import close_association, lost_association, open_association
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal
from runner.dicom.sop import VERIFICATION
from runner.dicom.status import StatusCategory, categorize


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
    assoc = open_association(make_ae(calling_ae, settings), peer, settings, [VERIFICATION])
    if isinstance(assoc, Refusal):
        return _outcome(assoc.category, assoc.detail, started)
    try:
        sent = time.monotonic()
        status = assoc.send_c_echo()
        if "Status" not in status:
            lost = lost_association(assoc, sent, settings)
            return _outcome(lost.category, lost.detail, started)
        code = int(status.Status)
        return _outcome(categorize(code), f"{peer} answered 0x{code:04X}", started)
    finally:
        close_association(assoc)


def _outcome(category: StatusCategory, detail: str, started: float) -> EchoOutcome:
    ok = category is StatusCategory.SUCCESS
    return EchoOutcome(ok, category, detail, time.monotonic() - started)
