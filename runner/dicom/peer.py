"""Who we talk to (Peer), over what (TlsFiles) and how patiently (DicomSettings): plain values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from runner.profile import defaults

_AE_TITLE_MAX = 16
_TIMEOUTS = ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout")


def check_ae_title(ae_title: str) -> str:
    """Return `ae_title` if DICOM allows it (1..16 printable ASCII, no backslash), else raise."""
    if not ae_title.strip() or len(ae_title) > _AE_TITLE_MAX:
        raise ValueError(f"AE title must be 1..{_AE_TITLE_MAX} characters: {ae_title!r}")
    if "\\" in ae_title or not ae_title.isascii() or not ae_title.isprintable():
        raise ValueError(f"AE title has characters DICOM does not allow: {ae_title!r}")
    return ae_title


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """DICOM TLS for one side of a connection, as PEM file paths (runner.dicom.tls loads them).

    `certificate`/`key` are presented to the other side; `ca` verifies it (without `ca` a
    client verifies servers against the system's trust store). `require_client_certificate`
    applies to a listener only (mutual TLS). `check_hostname` (clients only) also matches the
    peer's host name or IP address against its certificate; off by default, since DICOM
    certificates often name the AE or the device, not the address the runner dials.
    """

    certificate: Path
    key: Path
    ca: Path | None = None
    require_client_certificate: bool = False
    check_hostname: bool = False


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote DICOM application entity: its AE title, where it listens, and its TLS if any."""

    ae_title: str
    host: str
    port: int
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title)
        if not self.host:
            raise ValueError("peer host must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"peer port must be 1..65535: {self.port}")

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class DicomSettings:
    """Timeouts (seconds) and maximum PDU size (bytes) used for every association.

    All values are finite: a peer that stops answering ends as a TIMEOUT outcome rather
    than a hung migration. `max_pdu` may not be 0 (which pynetdicom reads as "unlimited").
    """

    acse_timeout: float = defaults.ACSE_TIMEOUT
    dimse_timeout: float = defaults.DIMSE_TIMEOUT
    network_timeout: float = defaults.NETWORK_TIMEOUT
    connection_timeout: float = defaults.CONNECTION_TIMEOUT
    max_pdu: int = defaults.MAX_PDU

    def __post_init__(self) -> None:
        for name in _TIMEOUTS:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number of seconds > 0: {value}")
        if not 4096 <= self.max_pdu < 2**32:
            raise ValueError(f"max_pdu must be 4096..4294967295 bytes (not 0): {self.max_pdu}")
