"""TCP_NODELAY is on for sockets of AEs from make_ae: requested and accepted ones."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

from pydicom import Dataset
from pynetdicom import AE

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import VERIFICATION
from runner.sim.ae import make_ae
from tests.peers import PynetdicomScp


def _no_answers(_: Dataset) -> Iterator[tuple[int, Dataset | None]]:
    yield 0x0000, None


def _client_nodelay(ae: AE, peer: Peer) -> int:
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
    try:
        assert assoc.is_established
        assert assoc.dul.socket is not None and assoc.dul.socket.socket is not None
        option: int = assoc.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert assoc.send_c_echo().Status == 0
        return option
    finally:
        assoc.release()


def test_requested_association_socket_has_tcp_nodelay(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp],
) -> None:
    scp = pynetdicom_scp_factory(on_find=_no_answers)
    assert _client_nodelay(make_ae("PACSMIG", DicomSettings()), scp.peer) != 0


def test_plain_pynetdicom_ae_does_not_set_it_so_the_check_can_fail(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp],
) -> None:
    scp = pynetdicom_scp_factory(on_find=_no_answers)
    assert _client_nodelay(AE(ae_title="PLAIN"), scp.peer) == 0


def test_accepted_association_socket_has_tcp_nodelay(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp],
) -> None:
    scp = pynetdicom_scp_factory(on_find=_no_answers)
    _client_nodelay(AE(ae_title="PLAIN"), scp.peer)  # a client that does not set it itself
    _client_nodelay(make_ae("PACSMIG", DicomSettings()), scp.peer)
    assert len(scp.nodelay_seen) == 2 and all(scp.nodelay_seen)


def test_factory_applies_settings_and_max_pdu_to_requests(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp],
) -> None:
    settings = DicomSettings(acse_timeout=3, dimse_timeout=4, network_timeout=5,
                             connection_timeout=6, max_pdu=65536)
    ae = make_ae("PACSMIG", settings)
    assert (ae.acse_timeout, ae.dimse_timeout, ae.network_timeout, ae.connection_timeout) == (
        3, 4, 5, 6)
    assert ae.maximum_pdu_size == 65536
    scp = pynetdicom_scp_factory(on_find=_no_answers)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(scp.peer.host, scp.peer.port, ae_title=scp.peer.ae_title)
    try:
        assert assoc.requestor.maximum_length == 65536
    finally:
        assoc.release()
