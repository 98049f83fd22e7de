"""Listener limits: association count and PDU size, checked on the wire (plain TCP; the
same limits apply under TLS, where the wrapped socket reaches the same code)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from pynetdicom.association import Association

from runner.dicom.echo import c_echo
from runner.dicom.listener import Listener, ListenerCallbacks, ListenerConfig, Verdict
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import VERIFICATION
from runner.dicom.spool import Spool
from runner.dicom.status import StatusCategory
from runner.sim.ae import make_ae
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


# ---- a listener that cannot be exhausted: slow, half-open and many clients -----------------

def _a_request() -> bytes:
    """A real A-ASSOCIATE-RQ for the listener, as the requestor encodes it."""
    from runner.dicom.ul import pdu

    contexts = (pdu.ProposedContext(1, VERIFICATION, ("1.2.840.10008.1.2",)),)
    return pdu.encode_request(pdu.AssociateRequest(LISTENER_AE, SOURCE_AE, contexts, MAX_PDU))


def _closed_by_peer(sock: socket.socket, seconds: float) -> bool:
    """Whether the listener closes (or aborts) the connection within `seconds`."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data or data[:1] == bytes([A_ABORT]):
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_an_association_request_trickled_a_byte_at_a_time_is_cut_at_the_acse_deadline(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(4)
    request = _a_request()
    started = time.monotonic()
    with socket.create_connection((HOST, listener.port), timeout=3) as sock:
        sock.settimeout(0.3)
        closed = False
        for byte in request:  # one byte every 0.25 s: each read is quick, the PDU is not
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(16) in (b"",) or time.monotonic() - started > 8:
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    assert closed
    assert time.monotonic() - started < SETTINGS.acse_timeout + 2  # not the whole request
    assert echo_ok(listener)


def test_connections_beyond_the_bound_are_closed_before_any_association(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(2)  # at most 2 * 2 + 4 = 8 connections at once
    idle = [socket.create_connection((HOST, listener.port), timeout=3) for _ in range(20)]
    try:
        closed = sum(_closed_by_peer(sock, 0.3) for sock in idle)
        assert closed >= 12  # the 12 beyond the bound, at once, unread
    finally:
        for sock in idle:
            sock.close()
    assert wait_until(lambda: echo_ok(listener), 5.0)


def test_half_open_clients_are_dropped_and_the_listener_serves_again(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(1)
    silent = [socket.create_connection((HOST, listener.port), timeout=3) for _ in range(6)]
    try:  # connected, never a byte: each is dropped after the ACSE timeout
        assert all(_closed_by_peer(sock, SETTINGS.acse_timeout + 2) for sock in silent)
    finally:
        for sock in silent:
            sock.close()
    assert echo_ok(listener)


def test_a_message_larger_than_the_spool_is_refused_without_being_held_in_memory(
        tmp_path: Path) -> None:
    config = ListenerConfig(LISTENER_AE, frozenset({SOURCE_AE}), settings=SETTINGS)
    stored: list[object] = []
    listener = Listener(config, Spool(tmp_path / "spool", 100_000),
                        ListenerCallbacks(lambda _h: Verdict.STORE, stored.append)).start()
    try:
        from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

        from runner.sim.generate import make_instance

        ds = make_instance("1.2.3", "1.2.3.4", "1.2.3.4.5", "P", "Big^Image", date(2020, 1, 1),
                           "OT", rows=512, cols=512)  # 256 kB of pixels: beyond the spool
        ae = make_ae(SOURCE_AE, SETTINGS)
        ae.add_requested_context(SecondaryCaptureImageStorage, [ExplicitVRLittleEndian])
        assoc = ae.associate(HOST, listener.port, ae_title=LISTENER_AE)
        assert assoc.is_established
        status = assoc.send_c_store(ds)
        assert int(status.Status) == 0xA700  # out of resources: read through, none of it kept
        assert stored == []
        assert assoc.is_established  # the association goes on
        assoc.release()
    finally:
        listener.stop()


# ---- the upper layer where it answers PS3.8 ------------------------------------------------

def _associated_socket(listener: Listener) -> socket.socket:
    """A raw connection with an association accepted (its A-ASSOCIATE-AC read)."""
    sock = socket.create_connection((HOST, listener.port), timeout=3)
    sock.sendall(_a_request())
    header = sock.recv(6)
    assert header[:1] == b"\x02", header  # A-ASSOCIATE-AC
    length = int.from_bytes(header[2:6], "big")
    while length:
        length -= len(sock.recv(length))
    return sock


def _abort_reason(sock: socket.socket) -> int:
    answer = sock.recv(10)
    assert answer[:1] == bytes([A_ABORT]), answer
    return answer[9]


def test_a_request_with_another_application_context_is_rejected_with_that_reason(
        start_listener: Callable[[int], Listener]) -> None:
    from runner.dicom.ul import pdu

    listener = start_listener(4)
    contexts = (pdu.ProposedContext(1, VERIFICATION, ("1.2.840.10008.1.2",)),)
    request = pdu.AssociateRequest(LISTENER_AE, SOURCE_AE, contexts, MAX_PDU,
                                   application_context="1.2.3.4")
    with socket.create_connection((HOST, listener.port), timeout=3) as sock:
        sock.sendall(pdu.encode_request(request))
        answer = sock.recv(10)
    assert answer[:1] == b"\x03"  # A-ASSOCIATE-RJ
    assert (answer[7], answer[8], answer[9]) == (1, 1, 2)  # permanent, user, app. context


def test_an_unknown_pdu_type_is_aborted_as_unrecognized(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(4)
    with _associated_socket(listener) as sock:
        sock.sendall(pdu_header(0x55, 4) + bytes(4))
        assert _abort_reason(sock) == 1  # unrecognized-PDU


def test_an_association_request_mid_association_is_aborted_as_unexpected(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(4)
    with _associated_socket(listener) as sock:
        sock.sendall(_a_request())
        assert _abort_reason(sock) == 2  # unexpected-PDU


def test_a_p_data_tf_without_a_pdv_is_aborted_as_an_invalid_parameter(
        start_listener: Callable[[int], Listener]) -> None:
    listener = start_listener(4)
    with _associated_socket(listener) as sock:
        sock.sendall(pdu_header(0x04, 0))
        assert _abort_reason(sock) == 6  # invalid-PDU-parameter value


def test_a_c_store_whose_sop_class_is_not_its_contexts_is_refused(
        start_listener: Callable[[int], Listener]) -> None:
    from runner.dicom.peer import Peer as LeanPeer
    from runner.dicom.ul import dimse
    from runner.dicom.ul.requestor import ClientAssociation, Proposal

    ct, mr = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
    listener = start_listener(4)
    assoc = ClientAssociation.open(LeanPeer(LISTENER_AE, HOST, listener.port), SOURCE_AE,
                                   SETTINGS, [Proposal(ct, ("1.2.840.10008.1.2.1",))])
    assert isinstance(assoc, ClientAssociation)
    context = assoc.context_for(ct, None)
    assert context is not None
    command = dimse.encode({dimse.AFFECTED_SOP_CLASS: mr, dimse.COMMAND_FIELD: dimse.C_STORE_RQ,
                            dimse.MESSAGE_ID: 7, dimse.PRIORITY: 0,
                            dimse.DATASET_TYPE: dimse.HAS_DATASET,
                            dimse.AFFECTED_SOP_INSTANCE: "1.2.3.4.5"})
    assert assoc.send(context, command, [b"\x08\x00\x16\x00UI\x02\x001\x00"]) is None
    answer = assoc.receive()
    assoc.release()
    assert not isinstance(answer, Exception) and dimse.number(answer.command, dimse.STATUS) \
        == 0x0122
