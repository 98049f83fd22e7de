"""The profile's DICOM addresses and timeouts as the plain values runner.dicom works with."""

from __future__ import annotations

from runner.dicom.peer import DicomSettings, Peer
from runner.profile.models import SiteProfile


def dicom_settings(profile: SiteProfile) -> DicomSettings:
    """Timeouts and PDU size for every association of this site."""
    d = profile.dicom
    return DicomSettings(acse_timeout=d.acse_timeout, dimse_timeout=d.dimse_timeout,
                         network_timeout=d.network_timeout,
                         connection_timeout=d.connection_timeout, max_pdu=d.max_pdu)


def device_peers(profile: SiteProfile) -> list[tuple[str, Peer]]:
    """Each source device as (device id, peer), in profile order."""
    return [(d.id, Peer(d.ae_title, d.host, d.port)) for d in profile.source.devices]


def destination_peer(profile: SiteProfile) -> Peer:
    """The destination archive."""
    dest = profile.destination
    return Peer(dest.ae_title, dest.host, dest.port)
