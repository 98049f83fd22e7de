"""The one factory for pynetdicom AEs: timeouts, PDU size, TCP_NODELAY, no identifier logs.

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

Privacy: importing this module switches off pynetdicom's logging of C-FIND/C-GET/C-MOVE
request and response identifiers (`_config.LOG_REQUEST_IDENTIFIERS` and
`_config.LOG_RESPONSE_IDENTIFIERS`), which would otherwise write patient names, IDs and birth
dates to the log. These two flags are the only module-level configuration the runner sets;
pynetdicom has no per-AE equivalent.
"""

from __future__ import annotations

import socket
from ssl import SSLContext
from typing import Any, TypeVar

from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.events import EventHandlerType
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import ThreadedAssociationServer

from runner.dicom.peer import DicomSettings, check_ae_title

_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False


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
        return super().associate(
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
        return super().make_server(
            address,
            ae_title=ae_title,
            contexts=contexts,
            ssl_context=ssl_context,
            evt_handlers=_with_nodelay(evt_handlers),
            server_class=server_class,
            **kwargs,
        )


def make_ae(calling_ae: str, settings: DicomSettings) -> AE:
    """An AE titled `calling_ae`, with the timeouts and PDU size of `settings`.

    Add presentation contexts to it as usual; every association it requests or accepts
    (`associate`, `start_server`) uses TCP_NODELAY sockets.
    """
    ae = _NoDelayAE(ae_title=check_ae_title(calling_ae))
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    ae.connection_timeout = settings.connection_timeout
    ae.maximum_pdu_size = settings.max_pdu
    return ae
