"""An association acceptor: binds a port and serves each association in its own thread.

Negotiation (PS3.8 9.3.2-9.3.4): the called AE title must be ours and the calling one in the
allow-list (otherwise A-ASSOCIATE-RJ, permanent, "called/calling AE title not recognized");
beyond `max_associations` open ones a request is rejected as transient ("local limit
exceeded"). Each proposed context is accepted with the first transfer syntax of our
preference list that it proposes (an abstract syntax not listed: with `any_abstract`, when
given, else refused); role selection is granted as proposed for the abstract
syntaxes in `policy.scp_roles` and declined otherwise.

Messages: C-ECHO is answered here; C-STORE and N-EVENT-REPORT go to the `Handlers`, whose
status is sent back; any other command is answered 0x0211 (unrecognised operation). A PDU
longer than allowed, a malformed PDU or a message on a context that was not accepted ends
the association with an A-ABORT; so does `network_timeout` seconds of silence. TLS, when
configured, is handshaken in the connection's thread within the ACSE timeout. Every
accepted socket has TCP_NODELAY. Nothing here polls: threads block in `recv` and `accept`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from runner.dicom.status import (
    OUT_OF_RESOURCES,
    SOP_CLASS_NOT_SUPPORTED,
    SUCCESS,
    UNRECOGNISED_OPERATION,
)
from runner.dicom.tls import server_handshake
from runner.dicom.ul import dimse, pdu
from runner.dicom.ul.link import Aborted, Closed, Link, Message, Release, TooLong, UnexpectedPdu
from runner.dicom.ul.negotiation import context_refused_why, negotiate, rejected_why
from runner.profile import defaults

LOGGER = logging.getLogger(__name__)

# An A-ASSOCIATE-RQ with 128 contexts of long UIDs is about 20 kB: a header announcing more
# before any association is not read (nor its body allocated).
ASSOCIATE_RQ_MAX = 64 * 1024
_ACCEPT_RETRY_SECONDS = 0.1
_RESPONSES = {dimse.C_STORE_RQ: dimse.C_STORE_RSP, dimse.C_ECHO_RQ: dimse.C_ECHO_RSP,
              dimse.N_EVENT_REPORT_RQ: dimse.N_EVENT_REPORT_RSP}


@dataclass(frozen=True, slots=True)
class AcceptorPolicy:
    """Who may associate, what they may propose, and how patiently we wait.

    `contexts` maps each supported abstract syntax to its acceptable transfer syntaxes,
    preferred first; `any_abstract`, when not empty, are the transfer syntaxes (preferred
    first) with which every other abstract syntax is accepted: standard, retired and
    private SOP classes alike.
    """

    ae_title: str
    allowed_aes: frozenset[str]
    contexts: Mapping[str, tuple[str, ...]]
    any_abstract: tuple[str, ...] = ()
    scp_roles: frozenset[str] = frozenset()
    max_pdu: int = defaults.MAX_PDU
    max_associations: int = defaults.LISTENER_MAX_ASSOCIATIONS
    acse_timeout: float = defaults.ACSE_TIMEOUT
    network_timeout: float = defaults.NETWORK_TIMEOUT
    max_message: int = 0  # bytes one message may hold (the spool's budget); 0: no limit

    @property
    def max_connections(self) -> int:
        """Connections served at once, associated or not: the associations and as many
        again being negotiated or turned away (beyond: closed at once, unread)."""
        return 2 * self.max_associations + 4


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end of an accepted association."""

    ae_title: str
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Request:
    """One C-STORE or N-EVENT-REPORT request, with the context's transfer syntax."""

    peer: Peer
    transfer_syntax: str
    message: Message


@dataclass(frozen=True, slots=True)
class TurnedAway:
    """An association, or one presentation context of it, that the acceptor refused: who
    asked, and why in words (no patient data: titles, UIDs of SOP classes and syntaxes)."""

    calling_ae: str
    reason: str


def _ignore(_value: object) -> None:
    """The default for the handler the owner does not need."""


@dataclass(frozen=True, slots=True)
class Handlers:
    """What the acceptor asks its owner: a (status, error comment) for each request; what
    it tells: each association or context refused (`on_turned_away`)."""

    on_store: Callable[[Request], tuple[int, str]]
    on_event_report: Callable[[Request], tuple[int, str]]
    on_turned_away: Callable[[TurnedAway], None] = _ignore


class Acceptor:
    """Serves associations on (host, port) until `stop()`."""

    def __init__(self, policy: AcceptorPolicy, handlers: Handlers, host: str, port: int,
                 tls: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self.handlers = handlers
        self.tls = tls
        self._address = (host, port)
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._links: set[Link] = set()
        self._accepted = 0
        self._connections = 0
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._socket is None:
            raise RuntimeError("the acceptor is not started")
        port: int = self._socket.getsockname()[1]
        return port

    def start(self, name: str) -> None:
        """Bind, listen and accept in a background thread called `name`; OSError if binding
        fails."""
        sock = socket.create_server(self._address, backlog=64, reuse_port=False)
        self._socket = sock
        threading.Thread(target=self._accept_loop, args=(sock,), name=name, daemon=True).start()

    def stop(self) -> None:
        """Close the port and abort every open association."""
        self._stopped.set()
        sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the loop thread
            sock.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            _abort(link, pdu.ABORT_SOURCE_USER, pdu.ABORT_NOT_SPECIFIED)

    def _accept_loop(self, sock: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                conn, address = sock.accept()
            except OSError as error:
                if self._stopped.is_set():
                    return
                LOGGER.warning("accepting a connection failed: %s", error)
                self._stopped.wait(_ACCEPT_RETRY_SECONDS)  # e.g. out of file descriptors
                continue
            with self._lock:
                room = self._connections < self.policy.max_connections
                self._connections += room
            if not room:
                LOGGER.warning("closed a connection from %s:%s at once: %d connections open "
                               "already", address[0], address[1], self.policy.max_connections)
                _close(conn)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve_counted, args=(conn, address), daemon=True,
                             name=f"association-{address[0]}:{address[1]}").start()

    def _serve_counted(self, conn: socket.socket, address: tuple[str, int]) -> None:
        try:
            self._serve(conn, address)
        finally:
            with self._lock:
                self._connections -= 1

    def _serve(self, conn: socket.socket, address: tuple[str, int]) -> None:
        if self.tls is not None:
            wrapped = self.tls.wrap_socket(conn, server_side=True,
                                           do_handshake_on_connect=False)
            if not server_handshake(wrapped, address, self.policy.acse_timeout):
                _close(wrapped)
                return
            conn = wrapped
        link = Link(conn, self.policy.max_pdu, max_message=self.policy.max_message)
        with self._lock:
            self._links.add(link)
        try:
            self._associate(link, address)
        except OSError as error:  # the socket failed outside a read, or `stop` closed it
            if not self._stopped.is_set():
                LOGGER.warning("the connection from %s:%s failed: %s", address[0],
                               address[1], error)
        finally:
            with self._lock:
                self._links.discard(link)
            link.close()

    def _associate(self, link: Link, address: tuple[str, int]) -> None:
        link.set_timeout(self.policy.acse_timeout)
        link.pdu_deadline = self.policy.acse_timeout  # the whole request, however trickled
        try:
            pdu_type, body = link.read_pdu(limit=ASSOCIATE_RQ_MAX)
            if pdu_type != pdu.ASSOCIATE_RQ:
                raise pdu.PduError(f"PDU type 0x{pdu_type:02X} where an A-ASSOCIATE-RQ belongs")
            request = pdu.decode_request(bytes(body))
        except (OSError, pdu.PduError) as error:
            if not isinstance(error, Closed) and not self._stopped.is_set():
                LOGGER.warning("no association with %s:%s: %s", *address[:2], error)
                _abort(link, pdu.ABORT_SOURCE_PROVIDER, pdu.ABORT_UNEXPECTED_PDU)
            return
        peer = Peer(request.calling_ae, address[0], address[1])
        reject = self._refusal(request, peer)
        if reject is not None:
            self.handlers.on_turned_away(TurnedAway(peer.ae_title, rejected_why(reject)))
            with contextlib.suppress(OSError):
                link.send(pdu.encode_reject(reject))
            return
        try:
            try:
                contexts = self._accept(link, request)
            except OSError:
                return  # gone before our A-ASSOCIATE-AC
            self._serve_messages(link, peer, contexts)
        finally:
            with self._lock:
                self._accepted -= 1

    def _refusal(self, request: pdu.AssociateRequest, peer: Peer) -> pdu.AssociateReject | None:
        if request.protocol_version & 1 == 0:
            return pdu.AssociateReject(pdu.REJECTED_PERMANENT, pdu.SOURCE_ACSE,
                                       pdu.REASON_PROTOCOL_VERSION)
        reason = None
        if request.application_context != pdu.APPLICATION_CONTEXT:
            reason = pdu.REASON_APPLICATION_CONTEXT
        elif request.called_ae != self.policy.ae_title:
            reason = pdu.REASON_CALLED_AE
        elif request.calling_ae not in self.policy.allowed_aes:
            reason = pdu.REASON_CALLING_AE
        if reason is not None:
            LOGGER.warning("refused an association from %s at %s:%s (calling or called AE "
                           "title not allowed)", peer.ae_title, peer.address, peer.port)
            return pdu.AssociateReject(pdu.REJECTED_PERMANENT, pdu.SOURCE_USER, reason)
        with self._lock:  # checked and counted at once: two requests cannot both pass
            busy = self._accepted >= self.policy.max_associations
            self._accepted += not busy
        if busy:
            LOGGER.warning("refused an association from %s at %s:%s: %d associations open "
                           "already", peer.ae_title, peer.address, peer.port,
                           self.policy.max_associations)
            return pdu.AssociateReject(pdu.REJECTED_TRANSIENT, pdu.SOURCE_PRESENTATION,
                                       pdu.REASON_LOCAL_LIMIT)
        return None

    def _accept(self, link: Link, request: pdu.AssociateRequest) -> dict[int, tuple[str, str]]:
        """Send the A-ASSOCIATE-AC; the accepted contexts, id -> (abstract, transfer syntax)."""
        results, accepted = [], {}
        for context in request.contexts:
            result = negotiate(context, self.policy.contexts, self.policy.any_abstract)
            results.append(result)
            if result.result == pdu.ACCEPTANCE:
                accepted[context.context_id] = (context.abstract_syntax, result.transfer_syntax)
            else:
                self.handlers.on_turned_away(TurnedAway(request.calling_ae,
                                                        context_refused_why(context, result)))
        abstract = {uid for uid, _ in accepted.values()}
        roles = {uid: (scu, scp and uid in self.policy.scp_roles)
                 for uid, (scu, scp) in request.roles.items() if uid in abstract}
        link.max_send = request.max_pdu
        link.send(pdu.encode_accept(pdu.AssociateAccept(
            request.called_ae, request.calling_ae, tuple(results), self.policy.max_pdu, roles)))
        return accepted

    def _serve_messages(self, link: Link, peer: Peer,
                        contexts: dict[int, tuple[str, str]]) -> None:
        link.set_timeout(self.policy.network_timeout)
        link.pdu_deadline = self.policy.network_timeout  # each PDU, however trickled
        while True:
            try:
                message = link.read_message()
            except Release:
                with contextlib.suppress(OSError):
                    link.send(pdu.release_rp())
                return
            except (Aborted, Closed):
                return
            except TooLong as error:
                LOGGER.warning("aborted the association with %s at %s:%s: %s", peer.ae_title,
                               peer.address, peer.port, error)
                _abort(link, pdu.ABORT_SOURCE_PROVIDER, pdu.ABORT_INVALID_PARAMETER)
                return
            except (pdu.PduError, TimeoutError, OSError) as error:
                if not self._stopped.is_set():
                    LOGGER.warning("aborted the association with %s at %s:%s: %s",
                                   peer.ae_title, peer.address, peer.port,
                                   error or type(error).__name__)
                    _abort(link, pdu.ABORT_SOURCE_PROVIDER, _abort_reason(error))
                return
            if message.context_id not in contexts:
                LOGGER.warning("aborted the association with %s: a message on presentation "
                               "context %d, which was not accepted", peer.ae_title,
                               message.context_id)
                _abort(link, pdu.ABORT_SOURCE_PROVIDER, pdu.ABORT_INVALID_PARAMETER)
                return
            try:
                self._answer(link, peer, contexts[message.context_id], message)
            except OSError as error:  # the peer went, or stop() closed the connection
                if not self._stopped.is_set():
                    LOGGER.warning("lost the association with %s at %s:%s while answering: "
                                   "%s", peer.ae_title, peer.address, peer.port, error)
                return

    def _answer(self, link: Link, peer: Peer, context: tuple[str, str],
                message: Message) -> None:
        field = dimse.number(message.command, dimse.COMMAND_FIELD) or 0
        if field == dimse.C_CANCEL_RQ:
            return  # nothing of ours can be cancelled
        abstract, transfer_syntax = context
        request = Request(peer, transfer_syntax, message)
        extra: dict[int, int | str | bytes] = {}
        affected = dimse.text(message.command, dimse.AFFECTED_SOP_CLASS)
        if field == dimse.C_ECHO_RQ:
            status, comment = SUCCESS, ""
        elif field == dimse.C_STORE_RQ and affected != abstract:
            # PS3.7 9.1.1.1: the request's SOP class is the presentation context's
            status, comment = SOP_CLASS_NOT_SUPPORTED, "SOP class differs from the context's"
            self.handlers.on_turned_away(TurnedAway(
                peer.ae_title, f"a C-STORE of {affected} on a context for {abstract}"))
        elif field == dimse.C_STORE_RQ and message.oversized:
            status, comment = OUT_OF_RESOURCES, "larger than the spool can ever hold"
            self.handlers.on_turned_away(TurnedAway(
                peer.ae_title, f"a C-STORE larger than the spool ({self.policy.max_message} "
                               "bytes), read and discarded"))
        elif field == dimse.C_STORE_RQ:
            status, comment = self.handlers.on_store(request)
        elif field == dimse.N_EVENT_REPORT_RQ:
            status, comment = self.handlers.on_event_report(request)
            event_type = dimse.number(message.command, dimse.EVENT_TYPE)
            if event_type is not None:
                extra[dimse.EVENT_TYPE] = event_type
        else:
            status, comment = UNRECOGNISED_OPERATION, "unrecognised operation"
        answer = _RESPONSES.get(field, field | 0x8000)
        response = dimse.response(answer, message.command, status, comment, extra)
        link.send_message(message.context_id, response)


def _abort_reason(error: BaseException) -> int:
    """The A-ABORT reason for a broken exchange (PS3.8 9.3.8): an unknown PDU type is
    unrecognized, a known one out of place unexpected, a malformed one an invalid
    parameter."""
    if isinstance(error, UnexpectedPdu):
        known = error.pdu_type in pdu.PDU_TYPES
        return pdu.ABORT_UNEXPECTED_PDU if known else pdu.ABORT_UNRECOGNIZED_PDU
    if isinstance(error, pdu.PduError):
        return pdu.ABORT_INVALID_PARAMETER
    return pdu.ABORT_UNEXPECTED_PDU


def _abort(link: Link, source: int, reason: int) -> None:
    with contextlib.suppress(OSError):  # the peer may have gone already
        link.send(pdu.abort(source, reason))
    link.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
