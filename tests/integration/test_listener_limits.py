"""Listener limits: association count and PDU size, checked on the wire (plain TCP; the
same limits apply under TLS, where the wrapped socket reaches the same code)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pynetdicom.association import Association

from runner.dicom.ae import make_ae
from runner.dicom.echo import c_echo
from runner.dicom.listener import Listener, ListenerCallbacks, ListenerConfig, Verdict
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import VERIFICATION
from runner.dicom.spool import Spool
from runner.dicom.status import StatusCategory
from tests.peers import HOST

LISTENER_AE = "MIGRATE"
SOURCE_AE = "SOURCE"
MAX_PDU = 16384
SETTINGS = DicomSettings(acse_timeout=3, dimse_timeout=5, network_timeout=5,
                         connection_timeout=3, max_pdu=MAX_PDU)
A_ABORT = 0x07


@pytest.fixture
def start_listener(tmp_path: Path) -> Iterator[Callable[[int], Listener]]:
    started: list[Listener] = []

    def start(max_associations: int) -> Listener:
        config = ListenerConfig(LISTENER_AE, frozenset({SOURCE_AE}), settings=SETTINGS,
                                max_associations=max_associations)
        callbacks = ListenerCallbacks(lambda _header: Verdict.STORE, lambda _received: None)
        started.append(Listener(config, Spool(tmp_path / "spool", 10**9), callbacks).start())
        return started[-1]

    yield start
    for listener in started:
        listener.stop()


def echo_ok(listener: Listener) -> bool:
    return c_echo(Peer(LISTENER_AE, HOST, listener.port), SOURCE_AE, SETTINGS).ok


def associate(listener: Listener) -> Association:
    ae = make_ae(SOURCE_AE, SETTINGS)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(HOST, listener.port, ae_title=LISTENER_AE)
    assert assoc.is_established
    return assoc


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def send_raw(assoc: Association, data: bytes) -> None:
    assert assoc.dul.socket is not None and assoc.dul.socket.socket is not None
    assoc.dul.socket.socket.sendall(data)


def pdu_header(pdu_type: int, length: int) -> bytes:
    return bytes([pdu_type, 0]) + length.to_bytes(4, "big")


def test_associations_beyond_the_maximum_are_rejected_until_one_ends(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(1)
    held = associate(listener)
    outcome = c_echo(Peer(LISTENER_AE, HOST, listener.port), SOURCE_AE, SETTINGS)
    assert outcome.category is StatusCategory.NO_ASSOCIATION and "rejected" in outcome.detail
    held.release()
    assert wait_until(lambda: echo_ok(listener), 3.0)


def test_p_data_longer_than_our_maximum_pdu_aborts_the_association_before_its_body(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(4)
    assoc = associate(listener)
    send_raw(assoc, pdu_header(0x04, MAX_PDU + 1))  # the header alone: no body follows
    assert wait_until(lambda: assoc.is_aborted, 3.0)
    assert echo_ok(listener)


def test_p_data_of_exactly_our_maximum_is_read_normally(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(4)
    assoc = associate(listener)
    send_raw(assoc, pdu_header(0x04, MAX_PDU))  # the listener now waits for the body
    assert not wait_until(lambda: assoc.is_aborted, 0.5)
    assoc.abort()
    assert echo_ok(listener)


def test_oversized_association_request_is_answered_with_an_abort(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(4)
    with socket.create_connection((HOST, listener.port), timeout=3) as sock:
        sock.sendall(pdu_header(0x01, 8 << 20))  # an 8 MiB A-ASSOCIATE-RQ, announced only
        answer = sock.recv(16)
    assert answer[:1] == bytes([A_ABORT])
    assert echo_ok(listener)
