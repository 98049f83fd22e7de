"""An association requestor: connect, negotiate, exchange DIMSE messages, release.

`ClientAssociation.open` connects to a peer (TCP_NODELAY, TLS when the peer has it),
proposes presentation contexts and returns the established association, or a Refusal
saying why not (categories and words callers and the ledger read alike for every service).
`exchange` sends one request and waits for its response within the DIMSE timeout (`send`
and `receive` do each half); a lost association comes back as a Refusal too, not as an
exception.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal, timed_out
from runner.dicom.status import StatusCategory, reject_reason
from runner.dicom.tls import client_context, describe_failure
from runner.dicom.ul import dimse, pdu
from runner.dicom.ul.link import Aborted, Buffer, Closed, Link, Message, Release
from runner.errors import InputError

MAX_CONTEXTS = 128  # context ids are the odd numbers 1..255


@dataclass(frozen=True, slots=True)
class Proposal:
    """One presentation context to propose: an abstract syntax and its transfer syntaxes."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


# What a query, retrieve or echo context proposes: explicit, then implicit VR little endian.
LITTLE_ENDIAN_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


class ClientAssociation:
    """An established association we requested; one exchange at a time."""

    def __init__(self, link: Link, peer: Peer, settings: DicomSettings,
                 accepted: dict[int, tuple[str, str]]) -> None:
        self.link = link
        self.peer = peer
        self.settings = settings
        self.accepted = accepted  # context id -> (abstract syntax, transfer syntax)
        self.is_established = True
        self._send_lock = threading.Lock()

    @classmethod
    def open(cls, peer: Peer, calling_ae: str, settings: DicomSettings,
             proposals: Sequence[Proposal]) -> ClientAssociation | Refusal:
        """Connect and negotiate; a Refusal when the peer cannot be reached or says no."""
        if not 0 < len(proposals) <= MAX_CONTEXTS:
            raise ValueError(f"1..{MAX_CONTEXTS} presentation contexts: {len(proposals)}")
        connected = _connect(peer, settings)
        if isinstance(connected, Refusal):
            return connected
        link = Link(connected, settings.max_pdu)
        contexts = tuple(pdu.ProposedContext(2 * index + 1, p.abstract_syntax,
                                             p.transfer_syntaxes)
                         for index, p in enumerate(proposals))
        request = pdu.AssociateRequest(peer.ae_title, calling_ae, contexts, settings.max_pdu)
        started = time.monotonic()
        try:
            link.set_timeout(settings.acse_timeout)
            link.send(pdu.encode_request(request))
            answer = _answer(link)
        except ssl.SSLError as error:
            link.close()
            if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
                return Refusal(StatusCategory.ABORTED,
                               f"{peer} closed the connection during negotiation")
            return Refusal(StatusCategory.NO_ASSOCIATION,
                           f"TLS with {peer} failed: {describe_failure(error)}")
        except (OSError, pdu.PduError) as error:
            link.close()
            return _negotiation_failed(error, peer, settings, started)
        if isinstance(answer, pdu.AssociateReject):
            link.close()
            why = reject_reason(answer.source, answer.reason)
            return Refusal(StatusCategory.NO_ASSOCIATION,
                           f"{peer} rejected the association ({why})")
        wrong = _accept_problem(answer, request)
        if wrong is not None:
            with contextlib.suppress(OSError):
                link.send(pdu.abort(pdu.ABORT_SOURCE_USER, pdu.ABORT_NOT_SPECIFIED))
            link.close()
            return Refusal(StatusCategory.ABORTED, f"{peer} accepted wrongly: {wrong}")
        link.max_send = answer.max_pdu
        proposed = {c.context_id: c for c in contexts}
        accepted = {r.context_id: (proposed[r.context_id].abstract_syntax, r.transfer_syntax)
                    for r in answer.contexts
                    if r.result == pdu.ACCEPTANCE and r.context_id in proposed
                    and r.transfer_syntax in proposed[r.context_id].transfer_syntaxes}
        link.set_timeout(settings.dimse_timeout)
        return cls(link, peer, settings, accepted)

    def context_for(self, abstract_syntax: str, transfer_syntax: str | None) -> int | None:
        """An accepted context id for `abstract_syntax` (in `transfer_syntax`, if given)."""
        for context_id, (abstract, syntax) in self.accepted.items():
            if abstract == abstract_syntax and transfer_syntax in (None, syntax):
                return context_id
        return None

    def exchange(self, context_id: int, command: bytes,
                 dataset: Sequence[Buffer] = ()) -> Message | Refusal:
        """Send a request and wait for the peer's next message (its response)."""
        sent = self.send(context_id, command, dataset)
        return sent if isinstance(sent, Refusal) else self.receive()

    def send(self, context_id: int, command: bytes,
             dataset: Sequence[Buffer] = ()) -> Refusal | None:
        """Send one message (any thread: sends are serialized); None when it went."""
        started = time.monotonic()
        try:
            with self._send_lock:
                self.link.send_message(context_id, command, dataset)
        except (OSError, pdu.PduError) as error:
            return self._lost(error, started)
        return None

    def receive(self) -> Message | Refusal:
        """The peer's next message, waiting at most the DIMSE timeout; a Refusal when the
        association ends instead (a release the peer asks for is answered first)."""
        started = time.monotonic()
        try:
            return self.link.read_message()
        except Release:
            self._released()
            return Refusal(StatusCategory.ABORTED,
                           "the peer released the association without a response")
        except (OSError, pdu.PduError) as error:
            return self._lost(error, started)

    def receive_within(self, seconds: float) -> Message | Refusal | None:
        """The peer's next message if it begins to arrive within `seconds` (then read as
        `receive` reads it), None when nothing came."""
        if not self.link.readable(seconds):
            return None
        return self.receive()

    def _released(self) -> None:
        """The peer asked to release the association: answer it; the association is over."""
        self.is_established = False
        with contextlib.suppress(OSError):
            self.link.send(pdu.release_rp())
        self.link.close()

    def release(self) -> None:
        """Release the association (abort it when the peer does not answer in time)."""
        if not self.is_established:
            return
        self.is_established = False
        try:
            self.link.set_timeout(self.settings.acse_timeout)
            self.link.send(pdu.release_rq())
            while True:
                pdu_type, _body = self.link.read_pdu()
                if pdu_type in (pdu.RELEASE_RP, pdu.ABORT):
                    break
                if pdu_type == pdu.RELEASE_RQ:  # a release collision (PS3.8 AR-8, AR-10):
                    self.link.send(pdu.release_rp())  # the requestor answers, then waits
        except (OSError, pdu.PduError):
            with contextlib.suppress(OSError):
                self.link.send(pdu.abort())
        self.link.close()

    def abort(self) -> None:
        """Abort the association at once (any thread: a reader waiting in `receive` wakes)."""
        if self.is_established:
            self.is_established = False
            with contextlib.suppress(OSError), self._send_lock:
                self.link.send(pdu.abort())
        self.link.close()

    def _lost(self, error: Exception, started: float) -> Refusal:
        self.abort()
        if isinstance(error, TimeoutError) or timed_out(
                started, min(self.settings.dimse_timeout, self.settings.network_timeout)):
            return Refusal(StatusCategory.TIMEOUT,
                           "no response within the DIMSE/network timeout")
        if isinstance(error, Aborted):
            return Refusal(StatusCategory.ABORTED, "the association was aborted")
        return Refusal(StatusCategory.ABORTED, "the connection closed without a response")


def _accept_problem(answer: pdu.AssociateAccept, request: pdu.AssociateRequest) -> str | None:
    """What is wrong with an A-ASSOCIATE-AC (PS3.8 9.3.3), or None: the application context
    must be DICOM's; a context accepted in a transfer syntax we did not propose is dropped
    (by the caller), not used."""
    if answer.application_context != pdu.APPLICATION_CONTEXT:
        return f"application context {answer.application_context!r}"
    return None


def is_response_to(message: Message, command_field: int, message_id: int) -> bool:
    """Whether `message` is the response `command_field` (C-FIND-RSP...) to request
    `message_id`."""
    return (dimse.number(message.command, dimse.COMMAND_FIELD) == command_field
            and dimse.number(message.command, dimse.RESPONDED_TO) == message_id)


def status_of(message: Message) -> int | None:
    """The Status (0000,0900) of a response, None when it has none."""
    return dimse.number(message.command, dimse.STATUS)


def _connect(peer: Peer, settings: DicomSettings) -> socket.socket | Refusal:
    context = None
    if peer.tls is not None:
        try:
            context = client_context(peer.tls)
        except InputError as error:
            return Refusal(StatusCategory.NO_ASSOCIATION,
                           f"TLS for {peer} cannot be set up: {error}")
    try:
        sock = socket.create_connection((peer.host, peer.port), settings.connection_timeout)
    except TimeoutError:
        return Refusal(StatusCategory.TIMEOUT, f"cannot connect to {peer}: timed out")
    except OSError:
        return Refusal(StatusCategory.NO_ASSOCIATION, f"cannot connect to {peer}")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is None:
        return sock
    try:
        sock.settimeout(settings.acse_timeout)
        return context.wrap_socket(sock, server_hostname=peer.host)
    except (OSError, ValueError) as error:
        sock.close()
        return Refusal(StatusCategory.NO_ASSOCIATION,
                       f"TLS with {peer} failed: {describe_failure(error)}")


def _answer(link: Link) -> pdu.AssociateAccept | pdu.AssociateReject:
    pdu_type, body = link.read_pdu()
    if pdu_type == pdu.ASSOCIATE_AC:
        return pdu.decode_accept(bytes(body))
    if pdu_type == pdu.ASSOCIATE_RJ:
        return pdu.decode_reject(bytes(body))
    if pdu_type == pdu.ABORT:
        raise Aborted("the peer aborted the association request")
    raise pdu.PduError(f"PDU type 0x{pdu_type:02X} in answer to an A-ASSOCIATE-RQ")


def _negotiation_failed(error: Exception, peer: Peer, settings: DicomSettings,
                        started: float) -> Refusal:
    if isinstance(error, TimeoutError) or timed_out(started, settings.acse_timeout):
        return Refusal(StatusCategory.TIMEOUT, f"{peer} did not answer the association")
    if isinstance(error, Aborted):
        return Refusal(StatusCategory.ABORTED, f"{peer} aborted the association request")
    if isinstance(error, Closed | ConnectionError):
        return Refusal(StatusCategory.ABORTED,
                       f"{peer} closed the connection during negotiation")
    return Refusal(StatusCategory.ABORTED, f"{peer} answered the association request "
                                           f"with something else: {error}")
