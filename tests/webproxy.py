"""A tiny HTTP(S) proxy in front of a DICOMweb service, for tests: it answers 401 to a wrong
bearer token, 413 to a body over `max_body`, scripted answers (503 with Retry-After, ...)
on demand, and forwards everything else; it records each request it saw."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

from pydicom import dcmread


@dataclass(frozen=True, slots=True)
class Seen:
    """One request the proxy saw, and what it answered."""

    method: str
    path: str
    body_bytes: int
    status: int
    at: float


@dataclass
class Faults:
    """What the proxy does instead of forwarding."""

    token: str | None = None  # the bearer token required, if any
    max_body: int | None = None  # larger bodies are answered 413
    scripted: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)  # next POSTs
    refuse_syntax: str | None = None  # instances in it are refused: Failure Reason 0xC122
    # POSTs are forwarded, then not answered until `release` is set (a crash mid-request)
    hang: threading.Event | None = None
    release: threading.Event = field(default_factory=threading.Event)


class WebProxy:
    """`url` forwards to `upstream` (a DICOMweb root), with `faults`."""

    def __init__(self, upstream: str, faults: Faults | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults or Faults()
        self.seen: list[Seen] = []
        self.arrived: list[int] = []  # instances in each POST, as it arrived
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.scheme = "http"
        if tls is not None:  # HTTPS (with the context's client certificate checks)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's DICOMweb root."""
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}/dicom-web"

    def start(self) -> WebProxy:
        """Serve in a thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def posts(self) -> list[Seen]:
        """The STOW-RS requests seen, in order."""
        with self.lock:
            return [s for s in self.seen if s.method == "POST"]

    def answer(self, method: str, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The fault for this request, or the upstream's answer."""
        faults = self.faults
        if method == "POST":
            with self.lock:
                self.arrived.append(body.count(b"Content-Type: application/dicom\r\n"))
        if faults.token is not None and headers.get("authorization") != f"Bearer {faults.token}":
            return 401, {"WWW-Authenticate": "Bearer"}, b"unauthorized"
        if method == "POST" and faults.max_body is not None and len(body) > faults.max_body:
            return 413, {}, b"too large"
        with self.lock:
            scripted = faults.scripted.popleft() if method == "POST" and faults.scripted \
                else None
        if scripted is not None:
            return scripted[0], scripted[1], b"scripted"
        refused = self._refused(headers, body) if method == "POST" else []
        if refused:
            return 409, {"Content-Type": "application/dicom+json"}, _failed(refused)
        answer = _forward(self.upstream + path.removeprefix("/dicom-web"), method, headers,
                          body)
        if method == "POST" and faults.hang is not None:
            faults.hang.set()
            faults.release.wait(30)
        return answer


    def _refused(self, headers: dict[str, str], body: bytes) -> list[str]:
        """The SOP Instance UIDs of the body's instances in the refused syntax (all are
        refused then: the test sends one instance per request)."""
        syntax = self.faults.refuse_syntax
        if syntax is None:
            return []
        boundary = headers["content-type"].split("boundary=")[1].strip('"').encode()
        uids = []
        for part in body.split(b"--" + boundary)[1:-1]:
            ds = dcmread(BytesIO(part.split(b"\r\n\r\n", 1)[1]), stop_before_pixels=True)
            if ds.file_meta.TransferSyntaxUID == syntax:
                uids.append(str(ds.SOPInstanceUID))
        return uids


def _failed(uids: list[str]) -> bytes:
    items = [{"00081155": {"vr": "UI", "Value": [uid]},
              "00081197": {"vr": "US", "Value": [0xC122]}} for uid in uids]
    return json.dumps({"00081198": {"vr": "SQ", "Value": items}}).encode()


def _forward(url: str, method: str, headers: dict[str, str],
             body: bytes) -> tuple[int, dict[str, str], bytes]:
    keep = {k: v for k, v in headers.items() if k in ("content-type", "accept")}
    request = urllib.request.Request(url, data=body or None, method=method, headers=keep)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {"Content-Type": response.headers.get(
                "Content-Type", "application/octet-stream")}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {}, error.read()


def _handler(proxy: WebProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # http.server names the handlers
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, answer = proxy.answer(method, self.path, headers, body)
            with proxy.lock:
                proxy.seen.append(Seen(method, self.path, len(body), status, time.monotonic()))
            try:
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client is gone (killed mid-request)

        def log_message(self, *_args: object) -> None:
            """Quiet."""

    return Handler
