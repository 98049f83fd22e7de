"""C-ECHO against real peers: success, and every failure as an outcome, never an exception."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from runner.dicom.echo import c_echo
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.status import StatusCategory
from tests.peers import HOST, OrthancProcess, free_port

FAST = DicomSettings(acse_timeout=1.0, dimse_timeout=1.0, network_timeout=2.0,
                     connection_timeout=2.0)


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that completes TCP handshakes but never says a word."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen(4)
        yield sock.getsockname()[1]


@pytest.mark.peers
def test_echo_to_orthanc_succeeds(orthanc_factory: Callable[..., OrthancProcess]) -> None:
    orthanc = orthanc_factory(aet="ECHOME")
    outcome = c_echo(orthanc.peer, "PACSMIG", FAST)
    assert outcome.ok and outcome.category is StatusCategory.SUCCESS
    assert 0 < outcome.seconds < 1


@pytest.mark.peers
def test_echo_with_the_wrong_called_ae_title_is_a_rejection_outcome(
    orthanc_factory: Callable[..., OrthancProcess],
) -> None:
    orthanc = orthanc_factory(aet="RIGHT")
    outcome = c_echo(Peer("WRONG", HOST, orthanc.dicom_port), "PACSMIG", FAST)
    assert not outcome.ok
    assert outcome.category is StatusCategory.NO_ASSOCIATION
    assert "rejected" in outcome.detail


def test_echo_to_a_closed_port_is_a_no_association_outcome() -> None:
    outcome = c_echo(Peer("NOBODY", HOST, free_port()), "PACSMIG", FAST)
    assert not outcome.ok
    assert outcome.category is StatusCategory.NO_ASSOCIATION
    assert "cannot connect" in outcome.detail


def test_echo_to_a_peer_that_never_answers_is_a_timeout_outcome(silent_listener: int) -> None:
    outcome = c_echo(Peer("SILENT", HOST, silent_listener), "PACSMIG", FAST)
    assert not outcome.ok
    assert outcome.category is StatusCategory.TIMEOUT
    assert FAST.acse_timeout * 0.95 <= outcome.seconds < FAST.acse_timeout + 2
