"""Throwaway TLS certificates for tests, made with the `openssl` CLI (EC P-256, valid 2 days).

`make_certificates(folder)` writes a CA, a server and a client certificate it issued (both
usable on either side: SAN IP:127.0.0.1 and DNS:localhost), and a second, "rogue" CA with a
client certificate of its own, which a listener trusting only the first CA must refuse.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runner.dicom.peer import TlsFiles

_DAYS = "2"
_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_CA_EXTENSIONS = ["-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
_LEAF_EXTENSIONS = """basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key (PEM files)."""

    certificate: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Certificates:
    """The PEM files of one test PKI, and TLS settings for each side."""

    ca: KeyPair
    server: KeyPair
    client: KeyPair
    rogue_ca: KeyPair
    rogue_client: KeyPair

    def server_tls(self, require_client_certificate: bool = True) -> TlsFiles:
        """The listener's TLS: the server certificate; clients verified against the CA."""
        return TlsFiles(self.server.certificate, self.server.key, self.ca.certificate,
                        require_client_certificate=require_client_certificate)

    def client_tls(self, rogue: bool = False, check_hostname: bool = False) -> TlsFiles:
        """A client's TLS: the (rogue) client certificate; servers verified against the CA."""
        pair = self.rogue_client if rogue else self.client
        return TlsFiles(pair.certificate, pair.key, self.ca.certificate,
                        check_hostname=check_hostname)


def openssl_available() -> bool:
    """Whether the `openssl` command is on PATH."""
    return shutil.which("openssl") is not None


def make_certificates(folder: Path) -> Certificates:
    """Create the CA, server, client, rogue CA and rogue client files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = _authority(folder, "ca", "pacsmig test CA")
    rogue_ca = _authority(folder, "rogue-ca", "pacsmig rogue CA")
    return Certificates(
        ca=ca,
        server=_leaf(folder, "server", "PACSMIG listener", ca),
        client=_leaf(folder, "client", "PACSMIG client", ca),
        rogue_ca=rogue_ca,
        rogue_client=_leaf(folder, "rogue-client", "PACSMIG rogue client", rogue_ca),
    )


def _authority(folder: Path, name: str, common_name: str) -> KeyPair:
    pair = KeyPair(folder / f"{name}.pem", folder / f"{name}.key")
    _openssl("req", "-x509", *_CURVE, "-keyout", str(pair.key), "-out", str(pair.certificate),
             "-days", _DAYS, "-subj", f"/CN={common_name}", *_CA_EXTENSIONS)
    return pair


def _leaf(folder: Path, name: str, common_name: str, issuer: KeyPair) -> KeyPair:
    pair = KeyPair(folder / f"{name}.pem", folder / f"{name}.key")
    request, extensions = folder / f"{name}.csr", folder / f"{name}.ext"
    extensions.write_text(_LEAF_EXTENSIONS)
    _openssl("req", "-new", *_CURVE, "-keyout", str(pair.key), "-out", str(request),
             "-subj", f"/CN={common_name}")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(issuer.certificate),
             "-CAkey", str(issuer.key), "-set_serial", str(secrets.randbits(62) + 1),
             "-days", _DAYS, "-out", str(pair.certificate), "-extfile", str(extensions))
    return pair


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)
