"""What a peer accepts, asked by association negotiation only: no data is sent.

Each (SOP class, transfer syntax) pair is proposed as its own presentation context, up to
128 per association (several associations when more), each released at once. The answer
is, per SOP class, the transfer syntaxes the peer accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal
from runner.dicom.ul.requestor import MAX_CONTEXTS, ClientAssociation, Proposal


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """Per SOP class, the syntaxes the peer accepted; `problem` when it could not be asked."""

    accepted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    problem: str | None = None


def accepted_syntaxes(peer: Peer, calling_ae: str, settings: DicomSettings,
                      sop_classes: Sequence[str], syntaxes: Sequence[str]) -> ProbeOutcome:
    """Negotiate every pair of `sop_classes` x `syntaxes` with `peer`; nothing is sent."""
    pairs = [(sop_class, syntax) for sop_class in sop_classes for syntax in syntaxes]
    accepted: dict[str, list[str]] = {sop_class: [] for sop_class in sop_classes}
    for start in range(0, len(pairs), MAX_CONTEXTS):
        chunk = pairs[start:start + MAX_CONTEXTS]
        opened = ClientAssociation.open(peer, calling_ae, settings,
                                        [Proposal(c, (s,)) for c, s in chunk])
        if isinstance(opened, Refusal):
            return ProbeOutcome(problem=f"{peer} could not be asked: {opened.detail}")
        try:
            for sop_class, syntax in opened.accepted.values():
                accepted[sop_class].append(syntax)
        finally:
            opened.release()
    return ProbeOutcome({c: tuple(s) for c, s in accepted.items()})
