"""Open and close one association with a peer; why it failed is data (a Refusal), not an error."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from ssl import SSLContext
from typing import Any, cast

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import EventHandlerType

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal, timed_out
from runner.dicom.status import StatusCategory
from runner.dicom.tls import TlsAttempt, client_context
from runner.errors import InputError


def open_association(
    ae: AE, peer: Peer, settings: DicomSettings, abstract_syntaxes: Sequence[str]
) -> Association | Refusal:
    """Request an association with `peer` for `abstract_syntaxes` (added to `ae`).

    Returns the established association, or a Refusal when the peer cannot be reached,
    rejects or aborts the request, times out, or accepts none of the abstract syntaxes.
    With `peer.tls` the association runs over TLS; a TLS failure (certificate refused,
    handshake failed, unusable PEM files) is a NO_ASSOCIATION Refusal saying why.
    """
    tls = _tls_attempt(peer)
    if isinstance(tls, Refusal):
        return tls
    for syntax in abstract_syntaxes:
        ae.add_requested_context(syntax)
    connected = threading.Event()
    on_open: EventHandlerType = (evt.EVT_CONN_OPEN, lambda _event: connected.set())
    started = time.monotonic()
    # pynetdicom only calls wrap_socket() on tls_args[0]: the attempt stands in for the context
    tls_args = (cast(SSLContext, tls), peer.host) if tls is not None else None
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, evt_handlers=[on_open],
                         tls_args=tls_args)
    if not assoc.is_established:
        if tls is not None and tls.failure is not None and not assoc.is_rejected:
            detail = f"TLS with {peer} failed: {tls.failure}"
            return Refusal(StatusCategory.NO_ASSOCIATION, detail)
        return _refusal(assoc, peer, settings, started, connected.is_set())
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    if not accepted.intersection(abstract_syntaxes):
        close_association(assoc)
        names = ", ".join(abstract_syntaxes)
        return Refusal(StatusCategory.NO_ASSOCIATION, f"{peer} accepted no context for {names}")
    return protect_responses(assoc)


def _tls_attempt(peer: Peer) -> TlsAttempt | Refusal | None:
    if peer.tls is None:
        return None
    try:
        return TlsAttempt(client_context(peer.tls))
    except InputError as error:
        return Refusal(StatusCategory.NO_ASSOCIATION, f"TLS for {peer} cannot be set up: {error}")


def _refusal(
    assoc: Association, peer: Peer, settings: DicomSettings, started: float, connected: bool
) -> Refusal:
    if not connected:
        if timed_out(started, settings.connection_timeout):
            return Refusal(StatusCategory.TIMEOUT, f"cannot connect to {peer}: timed out")
        return Refusal(StatusCategory.NO_ASSOCIATION, f"cannot connect to {peer}")
    if assoc.is_rejected:
        return Refusal(StatusCategory.NO_ASSOCIATION, f"{peer} rejected the association")
    if assoc.is_aborted:
        if timed_out(started, settings.acse_timeout):
            return Refusal(StatusCategory.TIMEOUT, f"{peer} did not answer the association")
        return Refusal(StatusCategory.ABORTED, f"{peer} aborted the association request")
    return Refusal(StatusCategory.ABORTED, f"{peer} closed the connection during negotiation")


def close_association(assoc: Association) -> None:
    """Release an established association (abort it if the release does not complete)."""
    if assoc.is_established:
        assoc.release()
    if assoc.is_established:
        assoc.abort()


def lost_association(assoc: Association, started: float, settings: DicomSettings) -> Refusal:
    """Classify a DIMSE exchange that ended without a response (started: last message).

    pynetdicom aborts on its own when the DIMSE or the network (idle) timeout expires;
    an exchange that ended after the shorter of the two is taken as a timeout.
    """
    if timed_out(started, min(settings.dimse_timeout, settings.network_timeout)):
        return Refusal(StatusCategory.TIMEOUT, "no response within the DIMSE/network timeout")
    if assoc.is_aborted:
        return Refusal(StatusCategory.ABORTED, "the association was aborted")
    return Refusal(StatusCategory.ABORTED, "the connection closed without a response")


class _ResponsesForTheCaller(queue.Queue[Any]):
    """A DIMSE message queue that never lets the reactor thread take a response.

    pynetdicom's requestor runs a reactor thread that polls the DIMSE queue (non-blocking)
    for requests from the peer, while `send_c_*` wait on it (blocking) for their responses.
    Its pause handshake before a send has a window in which the reactor still polls: a
    response arriving then is taken by the reactor, logged as "Received unexpected ...
    service message" and dropped, and the caller waits out the whole DIMSE timeout (seen
    here about once per 200 C-STOREs on loopback). With this queue a non-blocking get only
    ever returns requests (N-EVENT-REPORT, ...), and responses wait for the blocking reader.
    """

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if block:
            return super().get(block, timeout)
        with self.mutex:
            if self.queue and _is_request(self.queue[0][1]):
                return self._get()
        raise queue.Empty


def _is_request(message: Any) -> bool:
    return message is not None and bool(getattr(message, "is_valid_request", False))


def protect_responses(assoc: Association) -> Association:
    """Give a just-established requestor association a queue whose responses cannot be lost
    (once: a second call keeps the queue, and what it may already hold)."""
    if not isinstance(assoc.dimse.msg_queue, _ResponsesForTheCaller):
        assoc.dimse.msg_queue = _ResponsesForTheCaller()
    return assoc
