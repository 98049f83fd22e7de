"""The profile's DICOM addresses, timeouts and TLS files as the plain values runner.dicom uses
(where the profile meets the DICOM layer: neither imports the other)."""

from __future__ import annotations

from runner.dicom.peer import DicomSettings, Peer, TlsFiles
from runner.dicom.tls import client_context, server_context
from runner.errors import DicomError, InputError, Problem
from runner.profile.models import Device, SiteProfile, Tls


def dicom_settings(profile: SiteProfile) -> DicomSettings:
    """Timeouts and PDU size for every association of this site."""
    d = profile.dicom
    return DicomSettings(acse_timeout=d.acse_timeout, dimse_timeout=d.dimse_timeout,
                         network_timeout=d.network_timeout,
                         connection_timeout=d.connection_timeout, max_pdu=d.max_pdu)


def tls_files(tls: Tls | None) -> TlsFiles | None:
    """A profile `tls` section as the PEM paths runner.dicom.tls loads (None: plain TCP)."""
    if tls is None:
        return None
    return TlsFiles(certificate=tls.certificate, key=tls.key, ca=tls.ca,
                    require_client_certificate=tls.require_client_certificate)


def _peer(device: Device) -> Peer:
    return Peer(device.ae_title, device.host, device.port, tls=tls_files(device.tls))


def device_peers(profile: SiteProfile) -> list[tuple[str, Peer]]:
    """Each source device as (device id, peer), in profile order."""
    return [(d.id, _peer(d)) for d in profile.source.devices]


def device_peer(profile: SiteProfile, device_id: str) -> Peer:
    """The source device `device_id` (KeyError if the profile has none by that id)."""
    for device in profile.source.devices:
        if device.id == device_id:
            return _peer(device)
    raise KeyError(f"no source device {device_id!r} in the profile")


def destination_peer(profile: SiteProfile) -> Peer:
    """The destination archive as a DICOM peer (DicomError for a DICOMweb destination: what
    asks for its peer needs DIMSE)."""
    dest = profile.destination
    if dest.ae_title is None or dest.host is None or dest.port is None:
        raise DicomError(f"destination {dest.name} is a DICOMweb service: this needs a DIMSE "
                         "destination (ae_title, host, port)")
    return Peer(dest.ae_title, dest.host, dest.port, tls=tls_files(dest.tls))


def is_dicomweb(profile: SiteProfile) -> bool:
    """Whether the destination is a DICOMweb service (else a DICOM peer)."""
    return profile.destination.dicomweb is not None


def listener_tls(profile: SiteProfile) -> TlsFiles | None:
    """The listener's TLS (for ListenerConfig.tls), None when it listens on plain TCP."""
    return tls_files(profile.listener.tls)


def check_tls(profile: SiteProfile) -> None:
    """Load every TLS file set of the profile now: InputError naming each unusable file.

    Without this, a bad device or destination file shows up later as that peer's refused
    associations, and a bad listener file when the listener starts.
    """
    problems: list[Problem] = []
    sides = [(listener_tls(profile), True), (tls_files(profile.destination.tls), False)]
    sides += [(peer.tls, False) for _, peer in device_peers(profile)]
    for files, serves in sides:
        if files is None:
            continue
        try:
            (server_context if serves else client_context)(files)
        except InputError as error:
            problems.extend(error.problems)
    if problems:
        raise InputError(problems)
