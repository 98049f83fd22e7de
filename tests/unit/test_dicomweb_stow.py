"""STOW-RS requests and answers: the multipart body, per-instance answers from the
Referenced and Failed SOP Sequences, what a status says of the whole request, batches per
study within the request limits, and credentials that never show."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.destinations.stow import StowPart, Whole, body, body_size, read_answer
from runner.destinations.web import Credentials, SecretSource, WebService, read_credentials
from runner.errors import DicomError
from runner.execute.sending.dicomweb import _Ready, batches
from runner.execute.sending.prepare import Prepared
from runner.execute.sending.seam import ForwardItem

NONE = Credentials()


def _answer(status: int, payload: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers)


def _ref(uid: str, warning: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"00081155": {"vr": "UI", "Value": [uid]}}
    if warning is not None:
        item["00081196"] = {"vr": "US", "Value": [warning]}
    return item


def _failed(uid: str, reason: int) -> dict[str, Any]:
    return {"00081155": {"vr": "UI", "Value": [uid]}, "00081197": {"vr": "US", "Value": [reason]}}


def test_the_body_is_multipart_related_dicom_and_its_length_is_known_before_sending() -> None:
    parts = [StowPart("1.1", 3, lambda: [b"abc"]), StowPart("1.2", 2, lambda: [b"d", b"e"])]
    raw = b"".join(bytes(chunk) for chunk in body(parts, "BOUND"))
    assert raw == (b"--BOUND\r\nContent-Type: application/dicom\r\n\r\nabc\r\n"
                   b"--BOUND\r\nContent-Type: application/dicom\r\n\r\nde\r\n--BOUND--\r\n")
    assert body_size(parts, "BOUND") == len(raw)


def test_each_instance_is_answered_from_the_referenced_and_failed_sequences() -> None:
    payload = {"00081199": {"vr": "SQ", "Value": [_ref("1.1"), _ref("1.2", 0xB000)]},
               "00081198": {"vr": "SQ", "Value": [_failed("1.3", 0xC122),
                                                  _failed("1.4", 0xA700)]}}
    answer = read_answer(_answer(202, payload), NONE)
    assert answer.whole is Whole.ANSWERED
    assert answer.of("1.1").ok and answer.of("1.1").status == 0
    assert answer.of("1.2").ok and "warning 0xB000" in answer.of("1.2").detail
    assert answer.of("1.3").syntax_refused and not answer.of("1.3").ok
    assert answer.of("1.4").transient and not answer.of("1.4").syntax_refused
    assert not answer.of("1.5").ok  # sent, but not in the answer: not stored


def test_a_409_conflict_answers_per_instance_too() -> None:
    payload = {"00081198": {"vr": "SQ", "Value": [_failed("1.1", 0x0111)]}}
    answer = read_answer(_answer(409, payload), NONE)
    assert answer.whole is Whole.ANSWERED and answer.of("1.1").status == 0x0111


@pytest.mark.parametrize(("status", "whole"), [(401, Whole.REFUSED_CREDENTIALS),
                                               (403, Whole.REFUSED_CREDENTIALS),
                                               (413, Whole.TOO_LARGE), (429, Whole.BUSY),
                                               (503, Whole.BUSY), (500, Whole.FAILED)])
def test_what_the_http_status_says_of_the_whole_request(status: int, whole: Whole) -> None:
    assert read_answer(_answer(status), NONE).whole is whole


def test_retry_after_is_read_in_seconds_and_defaults_when_it_is_a_date() -> None:
    assert read_answer(_answer(503, headers={"Retry-After": "7"}), NONE).wait == 7.0
    dated = _answer(429, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})
    assert read_answer(dated, NONE, busy_wait=2.5).wait == 2.5


def test_a_bearer_token_from_the_environment_is_masked_in_any_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VNA_TOKEN", "tok-123456\n")
    secrets = read_credentials(SecretSource("bearer", env="VNA_TOKEN"))
    assert secrets.header == "Bearer tok-123456"
    assert secrets.mask("401: Bearer tok-123456 refused") == "401: Bearer *** refused"


def test_basic_credentials_from_a_file_are_masked_as_written_and_encoded(
        tmp_path: Path) -> None:
    (tmp_path / "vna.secret").write_text("migrator:pa55word")
    secrets = read_credentials(SecretSource("basic", file=tmp_path / "vna.secret"))
    encoded = base64.b64encode(b"migrator:pa55word").decode()
    assert secrets.header == f"Basic {encoded}"
    text = secrets.mask(f"{encoded} migrator:pa55word pa55word http://u:p@host/x")
    assert not re.search("pa55word|" + re.escape(encoded) + "|u:p@", text), text


def test_an_unusable_credential_is_named_by_where_it_is_never_by_its_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VNA_BASIC", "no-colon-here")
    with pytest.raises(DicomError, match="environment variable VNA_BASIC is not user") as err:
        read_credentials(SecretSource("basic", env="VNA_BASIC"))
    assert "no-colon-here" not in str(err.value)
    with pytest.raises(DicomError, match="VNA_MISSING is not set"):
        read_credentials(SecretSource("bearer", env="VNA_MISSING"))


def _ready(study: str, uid: str, size: int) -> _Ready:
    item = ForwardItem(uid, study, "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.1.2.1",
                       Path("x"), "x")
    return _Ready(item, Prepared(None), StowPart(uid, size, lambda: []))


def test_batches_keep_each_study_apart_and_respect_count_and_size_limits() -> None:
    pending = [_ready("A", "a1", 10), _ready("B", "b1", 10), _ready("A", "a2", 10),
               _ready("A", "a3", 10), _ready("B", "b2", 50)]
    by_count = WebService("http://x", max_instances_per_request=2)
    assert batches(pending, by_count) == [[0, 2], [3], [1, 4]]
    by_size = WebService("http://x", max_request_bytes=55)
    assert batches(pending, by_size) == [[0, 2, 3], [1], [4]]


def test_an_error_answers_text_is_not_kept_it_may_name_the_patient() -> None:
    answer = read_answer(httpx.Response(500, text="PatientID 4711 Doe^Jane rejected"), NONE)
    assert answer.detail == "HTTP 500 Internal Server Error"
