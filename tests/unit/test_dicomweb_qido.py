"""QIDO-RS as the destination's holdings: a study's instances read page by page with the
values asked for, a count, list matching by UID, and answers that say the service could not
be asked (no credential in them)."""

from __future__ import annotations

import httpx
import pytest

from runner.destinations import qido
from runner.destinations.qido import WebHoldings
from runner.destinations.web import Credentials, WebService

STUDY = "1.2.3"
INSTITUTION = 0x00080080
PATIENT_NAME = 0x00100010


def _instance(number: int) -> dict[str, object]:
    return {"00080018": {"vr": "UI", "Value": [f"1.2.3.{number}"]},
            "00080080": {"vr": "LO", "Value": ["Cloud Hospital"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}}


def _holdings(handler: httpx.MockTransport, secret: str = "") -> WebHoldings:
    credentials = Credentials(f"Bearer {secret}", (secret,)) if secret else Credentials()
    client = httpx.Client(transport=handler)
    return WebHoldings(WebService("http://vna/dicom-web"), credentials, client)


def test_a_study_is_read_page_by_page_with_its_values_in_dicom_string_form(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qido, "PAGE", 2)
    asked: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json=[_instance(n) for n in range(offset, min(offset + 2, 5))])

    found = _holdings(httpx.MockTransport(answer)).present(STUDY, (INSTITUTION, PATIENT_NAME))
    assert found.ok and len(found.sop_uids) == 5
    assert [u.params["offset"] for u in asked] == ["0", "2", "4"]
    assert asked[0].path == f"/dicom-web/studies/{STUDY}/instances"
    assert asked[0].params.get_list("includefield") == ["00080080", "00100010"]
    assert found.values["1.2.3.4"] == {INSTITUTION: "Cloud Hospital", PATIENT_NAME: "Doe^Jane"}


def test_a_study_the_service_does_not_hold_is_an_answer_with_nothing_in_it() -> None:
    found = _holdings(httpx.MockTransport(lambda _r: httpx.Response(204))).present(STUDY)
    assert found.ok and found.sop_uids == frozenset()


def test_the_count_is_the_studys_number_of_related_instances() -> None:
    study = {"0020000D": {"vr": "UI", "Value": [STUDY]},
             "00201208": {"vr": "IS", "Value": [7]}}
    counted = _holdings(httpx.MockTransport(
        lambda _r: httpx.Response(200, json=[study]))).count(STUDY)
    assert counted.ok and counted.count == 7


def test_uids_are_matched_as_lists_a_few_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qido, "UIDS_PER_QUERY", 2)
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["SOPInstanceUID"])
        return httpx.Response(200, json=[])

    assert _holdings(httpx.MockTransport(answer)).anywhere(["a", "b", "c"]).ok
    assert asked == ["a,b", "c"]


def test_a_refusal_is_not_an_answer_and_its_text_shows_no_secret() -> None:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="token tok-999 is revoked")

    found = _holdings(httpx.MockTransport(answer), secret="tok-999").present(STUDY)
    assert not found.ok and "HTTP 401" in found.detail
    assert "tok-999" not in found.detail
