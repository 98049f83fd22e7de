"""The pynetdicom AEs of the simulated PACS and destination (and of tests): timeouts, PDU
size, TCP_NODELAY, no identifier logs.

pynetdicom is here as the runner's *peer* (and, in tests, the oracle the lean upper layer,
runner.dicom.ul, is checked against); the runner itself speaks DICOM only through the lean
layer and imports none of pynetdicom (tests/unit/test_storage_sops.py holds it so).

TCP_NODELAY is set on every socket an AE made here uses, through pynetdicom's public
EVT_CONN_OPEN notification, which fires after the TCP connection exists and before the first
PDU is sent: in `AssociationSocket.connect` for requested associations, and in
`RequestHandler.handle` for connections accepted by `start_server`/`make_server`. The AE
subclass binds that handler in `associate` and `make_server` (which `start_server` calls),
so callers cannot forget it.

Measured with benchmarks/tcp_nodelay.py (200 C-STOREs of 64x64 8-bit CT instances over one
association to DCMTK storescp on loopback, 2-core VM, three runs):
    TCP_NODELAY off: 8.93-9.05 s (about 45 ms per C-STORE: Nagle waits on delayed ACKs)
    TCP_NODELAY on : 0.49-0.50 s (about 2.5 ms per C-STORE)      ratio 18-19x

TLS: `make_server` with an `ssl_context` serves through `TlsThreadedServer` (a subclass of
pynetdicom's server, through socketserver's hooks), which completes each TLS handshake in
the connection's own thread within the ACSE timeout (pynetdicom's server does it in the
accept loop, with no timeout: one silent client would stop the simulated PACS).

Lost responses: every association an AE made here requests gets `protect_responses`,
including those pynetdicom opens itself, such as the simulated PACS's C-MOVE C-STORE
sub-operations: without it pynetdicom's reactor thread can take a fast peer's response
before the caller waits for it (seen in CI against the lean listener: "Received unexpected
C-STORE service message", then a DIMSE timeout; the race is still in pynetdicom 3.0). It
replaces the association's DIMSE message queue: the one pynetdicom internal touched, and
only here, in the peer.

Privacy: importing this module switches off pynetdicom's logging of C-FIND/C-GET/C-MOVE
request and response identifiers (`_config.LOG_REQUEST_IDENTIFIERS` and
`_config.LOG_RESPONSE_IDENTIFIERS`), which would otherwise write patient names, IDs and birth
dates to the log. It also switches pydicom's value validation off (below), as the simulated
PACS reads and writes its synthetic data sets in bulk.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
from ssl import SSLContext
from typing import Any, TypeVar

from pydicom import config as pydicom_config
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.events import EventHandlerType
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import ThreadedAssociationServer

from runner.dicom.peer import DicomSettings, check_ae_title
from runner.dicom.tls import server_handshake

LOGGER = logging.getLogger(__name__)

_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
# pydicom checks every value it reads or sets against its VR with a regular expression
# (about 10% of the runner's CPU while relaying). Source data is carried, not judged, and
# the morph engine checks the values it writes itself (runner/morph/vr.py).
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE


def set_nodelay(sock: socket.socket | None) -> None:
    """Switch off Nagle's algorithm on a TCP socket (no-op for None or non-TCP sockets)."""
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _on_conn_open(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: the association's socket is connected, nothing sent yet."""
    assoc_socket = event.assoc.dul.socket
    set_nodelay(assoc_socket.socket if assoc_socket is not None else None)


_T = TypeVar("_T")
_NODELAY_HANDLER: EventHandlerType = (evt.EVT_CONN_OPEN, _on_conn_open)


def _with_nodelay(handlers: list[EventHandlerType] | None) -> list[EventHandlerType]:
    return [*(handlers or []), _NODELAY_HANDLER]


class TlsThreadedServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with each TLS handshake done in the connection's thread.

    The handshake must complete within the AE's ACSE timeout; a failed or silent one is
    logged and closed without stopping the accept loop or the other associations.
    """

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept a connection; wrap it for TLS without handshaking yet."""
        assert self.socket is not None
        client_socket, address = self.socket.accept()
        if self.ssl_context is not None:
            client_socket = self.ssl_context.wrap_socket(
                client_socket, server_side=True, do_handshake_on_connect=False)
        return client_socket, address

    def process_request_thread(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int] | str,
    ) -> None:
        """In the connection's thread: the TLS handshake first, then the association."""
        if isinstance(request, ssl.SSLSocket):
            timeout = self.ae.acse_timeout or DicomSettings().acse_timeout
            if not server_handshake(request, client_address, timeout):
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)


class _NoDelayAE(AE):
    """An AE whose requested and accepted associations all use TCP_NODELAY sockets.

    `associate` also defaults `max_pdu` to the AE's own maximum PDU size (pynetdicom's
    default is 16 kB whatever the AE says).
    """

    def associate(
        self,
        addr: str | tuple[str, int, int],
        port: int,
        contexts: list[PresentationContext] | None = None,
        ae_title: str = "ANY-SCP",
        max_pdu: int | None = None,
        ext_neg: list[Any] | None = None,
        bind_address: tuple[str, int] | tuple[str, int, int, int] | None = None,
        tls_args: tuple[SSLContext, str] | None = None,
        evt_handlers: list[EventHandlerType] | None = None,
    ) -> Association:
        assoc = super().associate(
            addr,
            port,
            contexts=contexts,
            ae_title=ae_title,
            max_pdu=self.maximum_pdu_size if max_pdu is None else max_pdu,
            ext_neg=ext_neg,
            bind_address=bind_address,
            tls_args=tls_args,
            evt_handlers=_with_nodelay(evt_handlers),
        )
        if assoc.is_established:
            # also the associations pynetdicom opens itself, e.g. a C-MOVE SCP's C-STORE
            # sub-operations (the simulated PACS): a fast peer's response could be lost
            protect_responses(assoc)
        return assoc

    def make_server(
        self,
        address: tuple[str, int] | tuple[str, int, int, int],
        ae_title: str | None = None,
        contexts: list[PresentationContext] | None = None,
        ssl_context: SSLContext | None = None,
        evt_handlers: list[EventHandlerType] | None = None,
        server_class: type[_T] | None = None,
        **kwargs: Any,
    ) -> _T | ThreadedAssociationServer:
        if ssl_context is not None and server_class is ThreadedAssociationServer:
            server_class = TlsThreadedServer  # type: ignore[assignment]
        return super().make_server(
            address,
            ae_title=ae_title,
            contexts=contexts,
            ssl_context=ssl_context,
            evt_handlers=_with_nodelay(evt_handlers),
            server_class=server_class,
            **kwargs,
        )


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


def make_ae(calling_ae: str, settings: DicomSettings) -> AE:
    """An AE titled `calling_ae`, with the timeouts and PDU size of `settings`.

    Add presentation contexts to it as usual; every association it requests or accepts
    (`associate`, `start_server`) uses TCP_NODELAY sockets (see the module docstring);
    `start_server(..., ssl_context=...)` serves TLS.
    """
    ae = _NoDelayAE(ae_title=check_ae_title(calling_ae))
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    ae.connection_timeout = settings.connection_timeout
    ae.maximum_pdu_size = settings.max_pdu
    return ae
