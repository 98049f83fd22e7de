"""Peer and DicomSettings refuse values that cannot work."""

from __future__ import annotations

import math

import pytest

from runner.dicom.peer import DicomSettings, Peer, check_ae_title


def test_defaults_are_the_documented_timeouts_and_pdu() -> None:
    settings = DicomSettings()  # the profile's `dicom` defaults (README, runner.profile.defaults)
    assert (settings.acse_timeout, settings.dimse_timeout) == (30.0, 120.0)
    assert (settings.network_timeout, settings.connection_timeout) == (120.0, 10.0)
    assert settings.max_pdu == 262144


@pytest.mark.parametrize("max_pdu", [0, -1, 100, 2**32])
def test_max_pdu_zero_or_out_of_range_is_refused(max_pdu: int) -> None:
    with pytest.raises(ValueError, match="max_pdu"):
        DicomSettings(max_pdu=max_pdu)


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_timeouts_must_be_finite_and_positive(value: float) -> None:
    with pytest.raises(ValueError, match="dimse_timeout"):
        DicomSettings(dimse_timeout=value)


@pytest.mark.parametrize("title", ["", "   ", "A" * 17, "BAD\\AE", "ÄE", "TAB\tAE"])
def test_ae_titles_dicom_does_not_allow_are_refused(title: str) -> None:
    with pytest.raises(ValueError, match="AE title"):
        check_ae_title(title)
    with pytest.raises(ValueError, match="AE title"):
        Peer(title, "127.0.0.1", 104)


@pytest.mark.parametrize("port", [0, 65536, -5])
def test_peer_port_must_be_a_tcp_port(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        Peer("PACS", "127.0.0.1", port)


def test_peer_prints_as_title_at_host_and_port() -> None:
    assert str(Peer("PACS", "127.0.0.1", 104)) == "PACS@127.0.0.1:104"
