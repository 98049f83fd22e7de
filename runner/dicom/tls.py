"""DICOM TLS: ssl contexts built from PEM files (TlsFiles), and why a handshake failed.

Contexts require TLS 1.2 or later. A client verifies the server's chain against `ca` (or the
system's trust store) and presents its own certificate, so mutual TLS works whenever the
server asks; host-name checking is off unless `TlsFiles.check_hostname` (DICOM peers are
usually dialled by IP address and their certificates name the device). A server presents
its certificate and, with `require_client_certificate`, refuses clients without a
certificate issued by `ca`. Contexts are cached per file set and rebuilt when a file changes.

Bad PEM files raise InputError naming the file. Handshake failures are data: a client's
come back as the lean requestor's Refusal (`describe_failure` says why); `server_handshake`
logs and says no.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from pathlib import Path

from runner.dicom.peer import TlsFiles
from runner.errors import InputError, problem_at

__all__ = ["TlsFiles", "client_context", "describe_failure", "server_context",
           "server_handshake"]

LOGGER = logging.getLogger(__name__)
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
_CERTIFICATE = "-----BEGIN CERTIFICATE-----"

_CACHE: dict[tuple[str, TlsFiles, tuple[int, ...]], ssl.SSLContext] = {}
_CACHE_LOCK = threading.Lock()
_LINGER_SECONDS = 1.0


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """The context for associations the runner requests; InputError for unusable files."""
    return _cached("client", files)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The context for a listener; InputError for unusable files."""
    return _cached("server", files)


def _cached(kind: str, files: TlsFiles) -> ssl.SSLContext:
    key = (kind, files, _mtimes(files))
    with _CACHE_LOCK:
        context = _CACHE.get(key)
        if context is None:
            context = _build_client(files) if kind == "client" else _build_server(files)
            _CACHE[key] = context
        return context


def _mtimes(files: TlsFiles) -> tuple[int, ...]:
    paths = [files.certificate, files.key, *([files.ca] if files.ca else [])]
    return tuple(_stat(path).st_mtime_ns for path in paths)


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as error:
        raise _bad(path, f"cannot read the file: {error.strerror or error}") from error


def _build_client(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = MINIMUM_VERSION
    context.check_hostname = files.check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if files.ca is not None:
        _load_ca(context, files.ca)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    _load_chain(context, files)
    return context


def _build_server(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    _load_chain(context, files)
    if files.ca is not None:
        _load_ca(context, files.ca)
        context.verify_mode = ssl.CERT_OPTIONAL  # a certificate that is offered is verified
    if files.require_client_certificate:
        if files.ca is None:
            raise _bad(files.certificate, "require_client_certificate needs a ca to verify "
                                          "client certificates against")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _load_chain(context: ssl.SSLContext, files: TlsFiles) -> None:
    _expect_pem(files.certificate, _CERTIFICATE, "a PEM certificate")
    _expect_pem(files.key, "PRIVATE KEY-----", "a PEM private key")
    if "ENCRYPTED" in _read(files.key):
        raise _bad(files.key, "the private key is encrypted; pacsmig needs an unencrypted key "
                              "(protect it with file permissions)")
    try:
        context.load_cert_chain(files.certificate, files.key, password=_no_password)
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error):
            raise _bad(files.key, f"the private key does not match the certificate "
                                  f"{files.certificate}") from error
        raise _bad(files.certificate, f"cannot load the certificate with the key {files.key}: "
                                      f"{error.reason or error}") from error


def _load_ca(context: ssl.SSLContext, path: Path) -> None:
    _expect_pem(path, _CERTIFICATE, "PEM CA certificates")
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as error:
        raise _bad(path, f"cannot load the CA certificates: {error.reason or error}") from error


def _expect_pem(path: Path, marker: str, what: str) -> None:
    if marker not in _read(path):
        raise _bad(path, f"the file does not hold {what}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError as error:
        raise _bad(path, f"cannot read the file: {error.strerror or error}") from error


def _no_password() -> str:
    return ""  # never prompt on the terminal for a key's password


def _bad(path: Path, message: str) -> InputError:
    return InputError([problem_at(path, f"TLS: {message}")])


def describe_failure(error: BaseException) -> str:
    """A TLS handshake error in words a site engineer can act on."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate not accepted: {error.verify_message or error.reason}"
    if isinstance(error, TimeoutError | socket.timeout):
        return "no TLS answer in time (does the peer use TLS on this port?)"
    if isinstance(error, ssl.SSLEOFError | ConnectionError):
        return "the peer closed the connection during the handshake (does it use TLS on " \
               "this port? does it accept our certificate?)"
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"{error.reason.replace('_', ' ').lower()} ({error.library or 'ssl'})"
    return str(error) or type(error).__name__


def server_handshake(sock: ssl.SSLSocket, address: object, timeout: float) -> bool:
    """Complete an accepted connection's handshake within `timeout` s; False (logged) if not."""
    previous = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        sock.do_handshake()
    except (OSError, ValueError) as error:
        LOGGER.warning("TLS handshake with %s failed: %s", _address(address),
                       describe_failure(error))
        _linger(sock)
        return False
    sock.settimeout(previous)
    return True


def _linger(sock: ssl.SSLSocket) -> None:
    """After a failed handshake: stop writing and read what the peer still sends, for at
    most _LINGER_SECONDS, before the caller closes. The alert OpenSSL sent (an unknown CA,
    say) then reaches the peer: closing with the peer's first request unread would reset the
    connection, and a reset can drop the alert before the peer reads it (a TLS 1.3 client
    finishes its handshake first, then sends at once)."""
    deadline = time.monotonic() + _LINGER_SECONDS
    try:
        sock.shutdown(socket.SHUT_WR)  # also leaves TLS: what follows reads the raw socket
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return
    except (OSError, ValueError):
        return


def _address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
