"""Association negotiation on the acceptor's side: the answer to each proposed presentation
context, and why an association or a context was refused, in words."""

from __future__ import annotations

from collections.abc import Mapping

from runner.dicom.ul import pdu


def negotiate(context: pdu.ProposedContext, supported: Mapping[str, tuple[str, ...]],
              any_abstract: tuple[str, ...] = ()) -> pdu.ContextResult:
    """The answer to one proposed context: the first of our syntaxes for its abstract
    syntax that it proposes (`any_abstract`: ours for an abstract syntax we do not list)."""
    syntaxes = supported.get(context.abstract_syntax) or any_abstract or None
    if syntaxes is None:
        return pdu.ContextResult(context.context_id, pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED)
    for syntax in syntaxes:
        if syntax in context.transfer_syntaxes:
            return pdu.ContextResult(context.context_id, pdu.ACCEPTANCE, syntax)
    return pdu.ContextResult(context.context_id, pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED)


_REJECT_REASONS = {
    (pdu.SOURCE_USER, pdu.REASON_CALLED_AE): "called AE title is not the listener's",
    (pdu.SOURCE_USER, pdu.REASON_APPLICATION_CONTEXT): "application context name not supported",
    (pdu.SOURCE_USER, pdu.REASON_CALLING_AE):
        "calling AE title is not in the listener's allow-list",
    (pdu.SOURCE_PRESENTATION, pdu.REASON_LOCAL_LIMIT):
        "the listener had its maximum of associations open",
    (pdu.SOURCE_ACSE, pdu.REASON_PROTOCOL_VERSION): "protocol version not supported",
}


def rejected_why(reject: pdu.AssociateReject) -> str:
    """An association refused, in words."""
    why = _REJECT_REASONS.get((reject.source, reject.reason), f"reason {reject.reason}")
    return f"association refused: {why}"


def context_refused_why(context: pdu.ProposedContext, result: pdu.ContextResult) -> str:
    """A presentation context refused, in words."""
    what = "SOP class not supported" if result.result == pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED \
        else "none of its transfer syntaxes accepted"
    syntaxes = ", ".join(context.transfer_syntaxes)
    return (f"presentation context refused ({what}): {context.abstract_syntax} "
            f"in {syntaxes}")
