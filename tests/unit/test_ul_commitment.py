"""The lean Storage Commitment requestor against a scripted SCP that reports before it answers.

PS3.4 lets the SCP send the N-EVENT-REPORT as soon as it knows the result; an SCP that sends
it on the requesting association before its N-ACTION response must have it answered and
kept, not taken for a broken exchange. (pynetdicom cannot be made to do this: its SCP sends
the response when the N-ACTION handler returns.)
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pydicom import Dataset

from runner.dicom.commitment import request_commitment
from runner.dicom.commitment_report import (
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_PUSH,
    CommitmentReport,
)
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.status import StatusCategory
from runner.dicom.ul import datasets, dimse, pdu
from runner.dicom.ul.link import Link

SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=5, network_timeout=5)
CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


@dataclass
class EagerScp:
    """Accepts one association; reports the commitment first, then answers the N-ACTION
    (or, `release_instead`, asks to release the association without answering)."""

    server: socket.socket
    release_instead: bool = False
    action: dimse.Command = field(default_factory=dict)
    report_answer: dimse.Command = field(default_factory=dict)
    release_answer: int = -1
    finished: threading.Event = field(default_factory=threading.Event)

    def serve(self) -> None:
        conn, _ = self.server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(conn, 0)
        link.set_timeout(5)
        try:
            self._serve(link)
        finally:
            link.close()
            self.finished.set()

    def _serve(self, link: Link) -> None:
        _type, body = link.read_pdu()
        request = pdu.decode_request(bytes(body))
        context = request.contexts[0]
        link.send(pdu.encode_accept(pdu.AssociateAccept(
            request.called_ae, request.calling_ae,
            (pdu.ContextResult(context.context_id, pdu.ACCEPTANCE, EXPLICIT),), 0)))
        action = link.read_message()
        self.action = action.command
        if self.release_instead:
            link.send(pdu.release_rq())
            self.release_answer = link.read_pdu()[0]
            return
        info = datasets.decode(action.dataset(), EXPLICIT)
        result = Dataset()
        result.TransactionUID = info.TransactionUID
        result.ReferencedSOPSequence = info.ReferencedSOPSequence
        link.send_message(context.context_id, dimse.encode({
            dimse.AFFECTED_SOP_CLASS: str(STORAGE_COMMITMENT_PUSH),
            dimse.COMMAND_FIELD: dimse.N_EVENT_REPORT_RQ,
            dimse.MESSAGE_ID: 7,
            dimse.DATASET_TYPE: dimse.HAS_DATASET,
            dimse.AFFECTED_SOP_INSTANCE: str(STORAGE_COMMITMENT_INSTANCE),
            dimse.EVENT_TYPE: 1,
        }), [datasets.encode(result, EXPLICIT)])
        self.report_answer = link.read_message().command
        link.send_message(context.context_id,
                          dimse.response(dimse.N_ACTION_RSP, action.command, 0x0000))
        pdu_type, _body = link.read_pdu()
        if pdu_type == pdu.RELEASE_RQ:
            link.send(pdu.release_rp())


@pytest.fixture(params=[False], ids=["reports"])
def eager_scp(request: pytest.FixtureRequest) -> Iterator[tuple[Peer, EagerScp]]:
    server = socket.create_server(("127.0.0.1", 0))
    scp = EagerScp(server, release_instead=request.param)
    thread = threading.Thread(target=scp.serve, daemon=True)
    thread.start()
    yield Peer("EAGER", "127.0.0.1", server.getsockname()[1]), scp
    thread.join(10)
    server.close()


def test_a_report_sent_before_the_action_response_is_answered_and_kept(
    eager_scp: tuple[Peer, EagerScp],
) -> None:
    peer, scp = eager_scp

    request = request_commitment(peer, "MIGRATE", SETTINGS, [(CT, "1.2.3.1"), (CT, "1.2.3.2")])

    assert request.ok and request.status == 0x0000, request.detail
    assert request.report == CommitmentReport(request.transaction_uid,
                                              frozenset({"1.2.3.1", "1.2.3.2"}))
    assert scp.action[dimse.COMMAND_FIELD] == dimse.N_ACTION_RQ
    assert scp.action[dimse.REQUESTED_SOP_CLASS] == STORAGE_COMMITMENT_PUSH
    assert scp.action[dimse.REQUESTED_SOP_INSTANCE] == STORAGE_COMMITMENT_INSTANCE
    assert scp.action[dimse.ACTION_TYPE] == 1
    assert scp.report_answer[dimse.COMMAND_FIELD] == dimse.N_EVENT_REPORT_RSP
    assert scp.report_answer[dimse.RESPONDED_TO] == 7
    assert scp.report_answer[dimse.STATUS] == 0x0000
    assert scp.report_answer[dimse.EVENT_TYPE] == 1


@pytest.mark.parametrize("eager_scp", [True], ids=["releases"], indirect=True)
def test_a_peer_releasing_instead_of_answering_is_a_refusal_not_an_exception(
    eager_scp: tuple[Peer, EagerScp],
) -> None:
    peer, scp = eager_scp

    request = request_commitment(peer, "MIGRATE", SETTINGS, [(CT, "1.2.3.1")],
                                 wait_for_report=5)

    assert request.category is StatusCategory.ABORTED and request.status is None
    assert "released" in request.detail
    assert scp.finished.wait(5)  # it reads our answer after we have sent it
    assert scp.release_answer == pdu.RELEASE_RP  # its release was answered
