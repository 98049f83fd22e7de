"""The requestor's A-RELEASE against a peer that releases at the same time (a collision,
PS3.8 9.2.2.5 and AR-8/AR-10): it answers the peer's A-RELEASE-RQ, then ends on the RP."""

from __future__ import annotations

import socket
import threading

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.ul import pdu
from runner.dicom.ul.link import Link
from runner.dicom.ul.requestor import LITTLE_ENDIAN_SYNTAXES, ClientAssociation, Proposal

VERIFICATION = "1.2.840.10008.1.1"


def colliding_acceptor(server: socket.socket, seen: list[int]) -> None:
    """Accept one association; answer its A-RELEASE-RQ with an RQ of its own, then an RP."""
    conn, _ = server.accept()
    link = Link(conn, 16384)
    link.set_timeout(5)
    _type, body = link.read_pdu()
    request = pdu.decode_request(bytes(body))
    accept = pdu.AssociateAccept(request.called_ae, request.calling_ae,
                                 (pdu.ContextResult(1, pdu.ACCEPTANCE, LITTLE_ENDIAN_SYNTAXES[0]),),
                                 16384)
    link.send(pdu.encode_accept(accept))
    seen.append(link.read_pdu()[0])  # the requestor's A-RELEASE-RQ
    link.send(pdu.release_rq())  # ours, crossing it
    seen.append(link.read_pdu()[0])  # the requestor must answer it with an A-RELEASE-RP
    link.send(pdu.release_rp())
    link.close()


def test_a_release_collision_is_answered_and_ends_cleanly() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []
    thread = threading.Thread(target=colliding_acceptor, args=(server, seen), daemon=True)
    thread.start()
    peer = Peer("PEER", "127.0.0.1", server.getsockname()[1])
    assoc = ClientAssociation.open(peer, "ME", DicomSettings(acse_timeout=5),
                                   [Proposal(VERIFICATION, LITTLE_ENDIAN_SYNTAXES)])
    assert isinstance(assoc, ClientAssociation)
    assoc.release()
    thread.join(5)
    server.close()
    assert seen == [pdu.RELEASE_RQ, pdu.RELEASE_RP]
