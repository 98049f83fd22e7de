"""The HL7 v2 listener over MLLP, driven by python-hl7's own MLLP client (and by a TLS socket):
every message is answered, AA only once `accept` has kept the request."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient

from runner.dicom.tls import client_context, server_context
from runner.execute.priority.hl7_listener import Hl7Listener
from runner.execute.priority.lane import RequestRefused
from runner.plan.priority import PriorityRequest
from tests.certs import Certificates, make_certificates

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
ORDER = (DATA / "orm_o01.hl7").read_text(encoding="utf-8")


class Keeper:
    """`accept` as the lane's: keeps requests, refuses a patient ID with a wildcard."""

    def __init__(self) -> None:
        self.kept: list[PriorityRequest] = []
        self.lock = threading.Lock()

    def __call__(self, request: PriorityRequest) -> bool:
        if "*" in request.patient_id:
            raise RequestRefused("the patient ID has wildcard characters")
        with self.lock:
            self.kept.append(request)
        return True


@pytest.fixture
def keeper() -> Keeper:
    return Keeper()


@pytest.fixture
def listener(keeper: Keeper) -> Iterator[Hl7Listener]:
    started = Hl7Listener("127.0.0.1", 0, keeper).start()
    yield started
    started.stop()


def msa(answer: bytes) -> tuple[str, str, str]:
    segment = hl7.parse(answer.strip(b"\x0b\x1c\r").decode("utf-8")).segment("MSA")
    fields = [str(field) for field in segment] + ["", ""]
    return fields[1], fields[2], fields[3]


def test_an_order_is_kept_and_answered_aa(listener: Hl7Listener, keeper: Keeper) -> None:
    with MLLPClient("127.0.0.1", listener.port) as client:
        assert msa(client.send_message(ORDER))[:2] == ("AA", "MSG00001")
    assert [r.patient_id for r in keeper.kept] == ["PAT-100"]


def test_two_messages_on_one_connection_are_each_answered(listener: Hl7Listener,
                                                          keeper: Keeper) -> None:
    second = ORDER.replace("MSG00001", "MSG00002")
    with MLLPClient("127.0.0.1", listener.port) as client:
        assert msa(client.send_message(ORDER))[0] == "AA"
        assert msa(client.send_message(second))[:2] == ("AA", "MSG00002")
    assert len(keeper.kept) == 2


def test_a_malformed_message_is_rejected_and_nothing_is_kept(listener: Hl7Listener,
                                                              keeper: Keeper) -> None:
    with MLLPClient("127.0.0.1", listener.port) as client:
        code, _, reason = msa(client.send_message("PID|1||NO-HEADER"))
        assert code == "AR" and "MSH" in reason
        unsupported = ORDER.replace("ORM^O01", "ORU^R01")
        assert msa(client.send_message(unsupported))[0] == "AR"
    assert keeper.kept == []


def test_a_request_the_lane_refuses_is_an_application_error(listener: Hl7Listener,
                                                             keeper: Keeper) -> None:
    with MLLPClient("127.0.0.1", listener.port) as client:
        code, _, reason = msa(client.send_message(ORDER.replace("PAT-100", "PAT*")))
    assert code == "AE" and "wildcard" in reason
    assert keeper.kept == []


@pytest.mark.tls
def test_mllp_over_tls_with_client_certificates(tmp_path: Path, keeper: Keeper) -> None:
    certs: Certificates = make_certificates(tmp_path / "certs")
    listener = Hl7Listener("127.0.0.1", 0, keeper,
                           server_context(certs.server_tls(True))).start()
    try:
        context = client_context(certs.client_tls())
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as raw, \
                context.wrap_socket(raw) as sock:
            sock.sendall(b"\x0b" + ORDER.encode() + b"\x1c\r")
            assert msa(sock.recv(65536))[0] == "AA"
        plain = ssl.create_default_context()
        plain.check_hostname, plain.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as raw, \
                pytest.raises((ssl.SSLError, ConnectionError, OSError)), \
                plain.wrap_socket(raw) as sock:  # no client certificate
            sock.sendall(b"\x0b" + ORDER.encode() + b"\x1c\r")
            sock.recv(65536)
            sock.sendall(b"\x0b" + ORDER.encode() + b"\x1c\r")
            if not sock.recv(65536):
                raise ConnectionError("closed without an answer")
    finally:
        listener.stop()
    assert len(keeper.kept) == 1


def test_pacsmig_listen_keeps_orders_in_the_inbox_between_runs(tmp_path: Path) -> None:
    from runner.commands.priority import listen
    from runner.dicom.peer import Peer
    from runner.execute.priority.inbox import INBOX_FILENAME, Inbox
    from tests.peers import free_port
    from tests.profiles import profile_data, write_profile

    port = free_port()
    data = profile_data(tmp_path, [("old1", Peer("OLD", "127.0.0.1", free_port()))],
                        Peer("NEW", "127.0.0.2", free_port()), free_port(),
                        priority={"hl7": {"host": "127.0.0.1", "port": port}})
    profile = write_profile(tmp_path, data)
    until, said = threading.Event(), []
    serving = threading.Thread(target=listen, args=(profile, said.append, until))
    serving.start()
    try:
        for _ in range(100):
            if said:
                break
            until.wait(0.05)
        with MLLPClient("127.0.0.1", port) as client:
            assert msa(client.send_message(ORDER))[0] == "AA"
            assert msa(client.send_message(ORDER.replace("PAT-100", "PAT*")))[0] == "AE"
    finally:
        until.set()
        serving.join(10)
    kept: list[PriorityRequest] = []
    Inbox(tmp_path / "reports" / INBOX_FILENAME).take(kept.extend)
    assert [r.patient_id for r in kept] == ["PAT-100"]
    assert "1 kept" in said[-1]
