"""DICOM TLS on the listener and on requested associations, with throwaway certificates."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pynetdicom import evt
from pynetdicom.events import EventHandlerType

from runner.dicom.echo import c_echo
from runner.dicom.listener import Listener, ListenerCallbacks, ListenerConfig, Verdict
from runner.dicom.peer import DicomSettings, Peer, TlsFiles
from runner.dicom.sop import VERIFICATION
from runner.dicom.spool import Spool
from runner.dicom.status import StatusCategory
from runner.dicom.tls import client_context, server_context
from runner.sim.ae import make_ae
from tests.certs import Certificates, make_certificates
from tests.peers import HOST, peer_env

pytestmark = pytest.mark.tls  # fails, not skips, under CI=true without openssl

LISTENER_AE = "MIGRATE"
SOURCE_AE = "SOURCE"
SETTINGS = DicomSettings(acse_timeout=3, dimse_timeout=5, network_timeout=5,
                         connection_timeout=3)

ListenerFactory = Callable[..., Listener]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def start_listener(tmp_path: Path) -> Iterator[ListenerFactory]:
    started: list[Listener] = []

    def start(tls: TlsFiles | None, **config: object) -> Listener:
        settings = config.pop("settings", SETTINGS)
        listener_config = ListenerConfig(LISTENER_AE, frozenset({SOURCE_AE}), tls=tls,
                                         settings=settings, **config)  # type: ignore[arg-type]
        spool = Spool(tmp_path / f"spool{len(started)}", max_bytes=10**9)
        callbacks = ListenerCallbacks(lambda _header: Verdict.STORE, lambda _received: None)
        started.append(Listener(listener_config, spool, callbacks).start())
        return started[-1]

    yield start
    for listener in started:
        listener.stop()


def echo(listener: Listener, tls: TlsFiles | None, called: str = LISTENER_AE) -> tuple[
        bool, StatusCategory, str]:
    outcome = c_echo(Peer(called, HOST, listener.port, tls), SOURCE_AE, SETTINGS)
    return outcome.ok, outcome.category, outcome.detail


def test_c_echo_over_mutual_tls_reaches_the_listener(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(certs.server_tls(require_client_certificate=True))
    assert echo(listener, certs.client_tls())[0]
    assert echo(listener, certs.client_tls(check_hostname=True))[0]  # SAN IP:127.0.0.1


def test_plain_tcp_to_a_tls_listener_fails_cleanly_and_the_listener_serves_on(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(certs.server_tls())
    ok, category, _detail = echo(listener, None)
    assert not ok and category in (StatusCategory.ABORTED, StatusCategory.NO_ASSOCIATION)
    assert echo(listener, certs.client_tls())[0]


def test_tls_to_a_plain_listener_is_a_no_association_outcome_saying_tls_failed(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(None)
    ok, category, detail = echo(listener, certs.client_tls())
    assert (ok, category) == (False, StatusCategory.NO_ASSOCIATION)
    assert "TLS with MIGRATE@" in detail and "failed" in detail
    assert echo(listener, None)[0]


def test_client_certificate_from_a_rogue_ca_is_refused_when_certificates_are_required(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(certs.server_tls(require_client_certificate=True))
    ok, category, detail = echo(listener, certs.client_tls(rogue=True))
    assert (ok, category) == (False, StatusCategory.NO_ASSOCIATION)
    assert "TLS" in detail and "unknown ca" in detail
    assert echo(listener, certs.client_tls())[0]


def test_client_without_a_certificate_is_refused_when_certificates_are_required(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(certs.server_tls(require_client_certificate=True))
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(certs.ca.certificate)
    ae = make_ae(SOURCE_AE, SETTINGS)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(HOST, listener.port, ae_title=LISTENER_AE, tls_args=(anonymous, HOST))
    assert not assoc.is_established
    assoc = ae.associate(HOST, listener.port, ae_title=LISTENER_AE,
                         tls_args=(client_context(certs.client_tls()), HOST))
    assert assoc.is_established
    assoc.release()


def test_server_certificate_the_client_does_not_trust_is_refused(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(certs.server_tls(require_client_certificate=False))
    trusting_rogue = TlsFiles(certs.client.certificate, certs.client.key,
                              certs.rogue_ca.certificate)
    ok, category, detail = echo(listener, trusting_rogue)
    assert (ok, category) == (False, StatusCategory.NO_ASSOCIATION)
    assert "certificate not accepted" in detail


def test_wrong_called_ae_title_is_rejected_over_tls(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(certs.server_tls())
    ok, category, detail = echo(listener, certs.client_tls(), called="SOMEONE_ELSE")
    assert (ok, category) == (False, StatusCategory.NO_ASSOCIATION)
    assert "rejected" in detail


def test_a_silent_connection_does_not_hold_up_other_tls_clients(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(certs.server_tls())
    with socket.create_connection((HOST, listener.port)):  # connects, never says hello
        started = time.monotonic()
        assert echo(listener, certs.client_tls())[0]
        assert time.monotonic() - started < SETTINGS.acse_timeout / 2


def _nodelay(raw: socket.socket | None) -> tuple[bool, int]:
    assert raw is not None
    return isinstance(raw, ssl.SSLSocket), raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_tls_sockets_have_tcp_nodelay_on_both_sides(certs: Certificates) -> None:
    accepted: list[tuple[bool, int]] = []

    def on_echo(event: evt.Event) -> int:
        assert event.assoc.dul.socket is not None
        accepted.append(_nodelay(event.assoc.dul.socket.socket))
        return 0x0000

    server_ae = make_ae("SERVER", SETTINGS)
    server_ae.add_supported_context(VERIFICATION)
    handlers: list[EventHandlerType] = [(evt.EVT_C_ECHO, on_echo)]
    server = server_ae.start_server((HOST, 0), block=False, evt_handlers=handlers,
                                    ssl_context=server_context(certs.server_tls()))
    assert server is not None
    try:
        ae = make_ae(SOURCE_AE, SETTINGS)
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate(HOST, server.server_address[1], ae_title="SERVER",
                             tls_args=(client_context(certs.client_tls()), HOST))
        assert assoc.is_established and assoc.send_c_echo().Status == 0
        assert assoc.dul.socket is not None
        requested = _nodelay(assoc.dul.socket.socket)
        assoc.release()
    finally:
        server.shutdown()
    assert requested[0] and requested[1] != 0
    assert len(accepted) == 1 and accepted[0][0] and accepted[0][1] != 0


@pytest.mark.skipif(shutil.which("echoscu") is None, reason="needs DCMTK echoscu")
def test_dcmtk_echoscu_with_tls_reaches_the_listener(
        certs: Certificates, start_listener: ListenerFactory) -> None:
    listener = start_listener(certs.server_tls(require_client_certificate=True))

    def echoscu(*tls: str) -> int:
        args = ["echoscu", "-aet", SOURCE_AE, "-aec", LISTENER_AE, "-to", "5", *tls,
                HOST, str(listener.port)]
        return subprocess.run(args, env=peer_env(), capture_output=True, timeout=30).returncode

    client = ["+tls", str(certs.client.key), str(certs.client.certificate),
              "+cf", str(certs.ca.certificate)]
    assert echoscu(*client) == 0
    assert echoscu() != 0  # plain TCP
