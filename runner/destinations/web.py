"""A DICOMweb service as plain values (root URL, credentials, TLS files, limits), the HTTP
client for it, and the masking that keeps its credentials out of every message.

Credentials are read once from a file or an environment variable; only the `Authorization`
header carries them, and `mask` removes the secret (and any user:password@ in a URL) from
any text before it is logged, recorded or shown.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from runner.errors import DicomError

USER_AGENT = "pacsmig-dicomweb"
_URL_USERINFO = re.compile(r"(https?://)[^/@\s]+@")


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where a credential is read from: `kind` bearer or basic (user:password)."""

    kind: str
    file: Path | None = None
    env: str | None = None

    def where(self) -> str:
        """Where the secret is read from, for messages (never the secret itself)."""
        return f"file {self.file}" if self.file is not None else f"environment variable {self.env}"


@dataclass(frozen=True, slots=True)
class WebService:
    """A DICOMweb service root and how to talk to it."""

    url: str
    auth: SecretSource | None = None
    certificate: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    timeout: float = 120.0
    max_request_bytes: int = 100_000_000
    max_instances_per_request: int = 50

    @property
    def root(self) -> str:
        """The service root without a trailing slash."""
        return self.url.rstrip("/")

    def shown(self) -> str:
        """The URL as reports and messages name it (any user:password@ removed)."""
        return mask(self.root, ())


@dataclass(frozen=True, slots=True)
class Credentials:
    """The Authorization header of a service, and the secrets to mask wherever text goes."""

    header: str | None = None
    secrets: tuple[str, ...] = field(default=())

    def mask(self, text: str) -> str:
        """`text` with every secret replaced by ***."""
        return mask(text, self.secrets)


def mask(text: str, secrets: tuple[str, ...]) -> str:
    """`text` without the given secrets (nor user:password@ in URLs)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return _URL_USERINFO.sub(r"\1***@", text)


def read_credentials(source: SecretSource | None) -> Credentials:
    """The Authorization header from `source` (DicomError naming where, never what, when it
    cannot be read or is empty)."""
    if source is None:
        return Credentials()
    secret = _read_secret(source).strip()
    if not secret:
        raise DicomError(f"the DICOMweb {source.kind} credential in {source.where()} is empty")
    if source.kind == "basic":
        if ":" not in secret:
            raise DicomError(f"the DICOMweb basic credential in {source.where()} is not "
                             "user:password")
        encoded = base64.b64encode(secret.encode()).decode("ascii")
        return Credentials(f"Basic {encoded}", (secret, encoded, secret.partition(":")[2]))
    return Credentials(f"Bearer {secret}", (secret,))


def _read_secret(source: SecretSource) -> str:
    if source.file is not None:
        try:
            return source.file.read_text(encoding="utf-8")
        except OSError as error:
            raise DicomError(f"cannot read the DICOMweb credential {source.where()}: "
                             f"{error.strerror}") from None
    value = os.environ.get(source.env or "")
    if value is None:
        raise DicomError(f"the DICOMweb credential {source.where()} is not set")
    return value


def open_client(service: WebService, credentials: Credentials) -> httpx.Client:
    """An HTTP client for `service`: its timeout, TLS files and Authorization header."""
    headers = {"User-Agent": USER_AGENT}
    if credentials.header:
        headers["Authorization"] = credentials.header
    return httpx.Client(headers=headers, timeout=service.timeout, verify=_tls(service),
                        follow_redirects=False)


def _tls(service: WebService) -> ssl.SSLContext | bool:
    """The TLS context for the service's CA and client certificate (DicomError naming the
    files that cannot be loaded)."""
    if service.ca is None and service.certificate is None:
        return True
    try:
        context = ssl.create_default_context(cafile=str(service.ca) if service.ca else None)
        if service.certificate is not None:
            context.load_cert_chain(str(service.certificate),
                                    str(service.key) if service.key else None)
    except (ssl.SSLError, OSError) as error:
        files = ", ".join(str(f) for f in (service.ca, service.certificate, service.key) if f)
        raise DicomError(f"cannot load the DICOMweb TLS files ({files}): {error}") from None
    return context


def retry_after(response: httpx.Response, default: float) -> float:
    """Seconds the service asks to wait (Retry-After in seconds; an HTTP date or nothing:
    `default`)."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return default
