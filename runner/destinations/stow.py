"""STOW-RS: instances of one study POSTed as one multipart/related; type="application/dicom"
request, streamed part by part (each part's bytes produced as the body goes out), and
the service's answer read per instance (Referenced SOP Sequence, Failed SOP Sequence with
its Failure Reason, Warning Reason) or, for the whole request, from the HTTP status.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import httpx

from runner.destinations.web import Credentials, WebService, retry_after

Chunks = Callable[[], Iterable[bytes | memoryview]]  # a part's bytes, produced on demand

REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
# Failure Reasons meaning the service does not take the instance's transfer syntax
SYNTAX_REFUSED = frozenset({0xC122})
# Failure Reasons worth trying again later: out of resources (0xA7xx), processing failure
TRANSIENT = (0xA700, 0xA7FF)


class Whole(StrEnum):
    """What the HTTP status says of the request as a whole."""

    ANSWERED = "answered"  # 200/202/409 (per-instance answers in the body)
    TOO_LARGE = "too_large"  # 413
    BUSY = "busy"  # 429, 503: wait Retry-After, send again
    REFUSED_CREDENTIALS = "refused_credentials"  # 401, 403: stop the run
    FAILED = "failed"  # any other status, or no answer at all


@dataclass(frozen=True, slots=True)
class StowPart:
    """One Part-10 instance to send: its (destination) SOP Instance UID, size and bytes."""

    sop_instance_uid: str
    size: int
    chunks: Chunks


@dataclass(frozen=True, slots=True)
class InstanceAnswer:
    """What the service said of one instance."""

    ok: bool
    status: int | None
    detail: str
    syntax_refused: bool = False
    transient: bool = True


@dataclass(frozen=True, slots=True)
class StowAnswer:
    """The answer to one STOW-RS request."""

    whole: Whole
    http_status: int | None
    detail: str
    instances: dict[str, InstanceAnswer]
    wait: float = 0.0  # BUSY: seconds the service asked to wait

    def of(self, sop_instance_uid: str) -> InstanceAnswer:
        """The answer for one instance sent (one the service did not mention: a failure,
        worth another try, unless the request as a whole succeeded with no body)."""
        answer = self.instances.get(sop_instance_uid)
        if answer is not None:
            return answer
        if self.whole is Whole.ANSWERED and self.http_status == 200 and not self.instances:
            return InstanceAnswer(True, 0x0000, "stored (HTTP 200)")
        return InstanceAnswer(False, self.http_status, f"{self.detail} (instance not in the "
                              "STOW-RS answer)" if self.whole is Whole.ANSWERED else self.detail)


def stow(client: httpx.Client, service: WebService, credentials: Credentials,
         parts: Sequence[StowPart], busy_wait: float = 5.0) -> StowAnswer:
    """POST `parts` to {root}/studies as one request; what the service answered."""
    boundary = uuid.uuid4().hex
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; '
                               f"boundary={boundary}",
               "Accept": "application/dicom+json",
               "Content-Length": str(body_size(parts, boundary))}
    try:
        response = client.post(f"{service.root}/studies", headers=headers,
                               content=cast(Iterator[bytes], body(parts, boundary)))
    except httpx.HTTPError as error:
        return StowAnswer(Whole.FAILED, None, credentials.mask(
            f"STOW-RS to {service.shown()} failed: {type(error).__name__}: {error}"), {})
    return read_answer(response, credentials, busy_wait)


def _head(boundary: str) -> bytes:
    return f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")


def body(parts: Sequence[StowPart], boundary: str) -> Iterator[bytes | memoryview]:
    """The multipart body, one chunk at a time."""
    for part in parts:
        yield _head(boundary)
        yield from part.chunks()
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


def body_size(parts: Sequence[StowPart], boundary: str) -> int:
    """The body's length in bytes (sent as Content-Length: no chunked encoding needed)."""
    return sum(len(_head(boundary)) + part.size + 2 for part in parts) + len(boundary) + 6


def read_answer(response: httpx.Response, credentials: Credentials,
                busy_wait: float = 5.0) -> StowAnswer:
    """The per-instance answers of a STOW-RS response, or what its status says."""
    status = response.status_code
    detail = credentials.mask(f"HTTP {status} {response.reason_phrase}")
    if status in (401, 403):
        return StowAnswer(Whole.REFUSED_CREDENTIALS, status, detail, {})
    if status == 413:
        return StowAnswer(Whole.TOO_LARGE, status, detail, {})
    if status in (429, 503):
        return StowAnswer(Whole.BUSY, status, detail, {}, retry_after(response, busy_wait))
    if status not in (200, 202, 409):  # the status only: the text may echo patient data
        return StowAnswer(Whole.FAILED, status, detail, {})
    return StowAnswer(Whole.ANSWERED, status, detail, _instances(_json(response)))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json() if response.content else {}
    except ValueError:
        return {}
    if isinstance(answer, list):  # some services wrap the data set in a list
        answer = answer[0] if answer else {}
    return answer if isinstance(answer, dict) else {}


def _instances(answer: dict[str, Any]) -> dict[str, InstanceAnswer]:
    found: dict[str, InstanceAnswer] = {}
    for item in _sequence(answer, REFERENCED_SOP_SEQUENCE):
        warning = _int(item, WARNING_REASON)
        detail = f"stored with warning 0x{warning:04X}" if warning else "stored"
        found[_uid(item)] = InstanceAnswer(True, warning or 0x0000, detail)
    for item in _sequence(answer, FAILED_SOP_SEQUENCE):
        reason = _int(item, FAILURE_REASON)
        found[_uid(item)] = _failure(reason)
    found.pop("", None)
    return found


def _failure(reason: int | None) -> InstanceAnswer:
    if reason is None:
        return InstanceAnswer(False, None, "refused (no Failure Reason given)")
    refused_syntax = reason in SYNTAX_REFUSED
    transient = TRANSIENT[0] <= reason <= TRANSIENT[1] or reason == 0x0110
    what = "transfer syntax not supported" if refused_syntax else "refused"
    return InstanceAnswer(False, reason, f"{what}: Failure Reason 0x{reason:04X}",
                          syntax_refused=refused_syntax, transient=transient)


def _sequence(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    items = answer.get(tag, {}).get("Value") or []
    return [item for item in items if isinstance(item, dict)]


def _uid(item: dict[str, Any]) -> str:
    values = item.get(SOP_INSTANCE_UID, {}).get("Value") or [""]
    return str(values[0])


def _int(item: dict[str, Any], tag: str) -> int | None:
    values = item.get(tag, {}).get("Value") or []
    try:
        return int(values[0]) if values else None
    except (TypeError, ValueError):
        return None
