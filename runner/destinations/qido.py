"""QIDO-RS: what a DICOMweb service holds (a study's instances, paged, with the values of
the tags asked for; instances by UID in any study; a study's instance count), answered as
the same outcomes the DIMSE queries give (runner.dicom.verify)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydicom import Dataset

from runner.destinations.web import Credentials, WebService
from runner.dicom.status import StatusCategory
from runner.dicom.verify import CountOutcome, PresenceOutcome
from runner.dicomdict import value_text

PAGE = 1000  # instances per QIDO request (limit/offset)
UIDS_PER_QUERY = 50  # SOP Instance UIDs per list-matching request (URL length)
SOP_INSTANCE_UID = 0x00080018
STUDY_RELATED_INSTANCES = 0x00201208
STUDY_UID = 0x0020000D
JSON = "application/dicom+json"


@dataclass(frozen=True, slots=True)
class _Page:
    category: StatusCategory
    detail: str
    answers: list[dict[str, Any]]


@dataclass
class WebHoldings:
    """A DICOMweb service's holdings, by QIDO-RS over one HTTP client."""

    service: WebService
    credentials: Credentials
    client: httpx.Client

    def present(self, study_uid: str, keys: Sequence[int] = ()) -> PresenceOutcome:
        """GET /studies/{uid}/instances, page by page."""
        started = time.monotonic()
        answers: list[dict[str, Any]] = []
        while True:
            page = self._get(f"/studies/{study_uid}/instances",
                             {"limit": PAGE, "offset": len(answers)}, keys)
            if not page.category.is_ok:
                return PresenceOutcome(page.category, page.detail,
                                       seconds=time.monotonic() - started)
            answers += page.answers
            if len(page.answers) < PAGE:
                return _presence(answers, keys, started, page.detail)

    def anywhere(self, sop_uids: Sequence[str], keys: Sequence[int] = ()) -> PresenceOutcome:
        """GET /instances?SOPInstanceUID=a,b,... (QIDO list matching), a few UIDs at a time."""
        started = time.monotonic()
        uids = sorted(set(sop_uids))
        answers: list[dict[str, Any]] = []
        for first in range(0, len(uids), UIDS_PER_QUERY):
            chunk = ",".join(uids[first:first + UIDS_PER_QUERY])
            page = self._get("/instances", {"SOPInstanceUID": chunk}, keys)
            if not page.category.is_ok:
                return PresenceOutcome(page.category, page.detail,
                                       seconds=time.monotonic() - started)
            answers += page.answers
        return _presence(answers, keys, started, f"{len(answers)} found")

    def count(self, study_uid: str) -> CountOutcome:
        """GET /studies?StudyInstanceUID=uid with NumberOfStudyRelatedInstances."""
        started = time.monotonic()
        page = self._get("/studies", {"StudyInstanceUID": study_uid},
                         (STUDY_RELATED_INSTANCES,))
        seconds = time.monotonic() - started
        if not page.category.is_ok:
            return CountOutcome(page.category, page.detail, None, seconds)
        studies = [a for a in page.answers if _text(a, STUDY_UID) == study_uid]
        if not studies:
            return CountOutcome(page.category, "the service holds no such study", 0, seconds)
        value = _text(studies[0], STUDY_RELATED_INSTANCES)
        if not value:
            return CountOutcome(page.category, "the service did not return "
                                "NumberOfStudyRelatedInstances", None, seconds)
        return CountOutcome(page.category, page.detail, int(value), seconds)

    def _get(self, path: str, params: dict[str, str | int], keys: Sequence[int]) -> _Page:
        query: list[tuple[str, str | int | float | bool | None]] = list(params.items())
        query += [("includefield", f"{key:08X}") for key in keys]
        try:
            response = self.client.get(self.service.root + path, params=query,
                                       headers={"Accept": JSON})
        except httpx.TimeoutException as error:
            return _Page(StatusCategory.TIMEOUT, self._masked(f"QIDO-RS timed out: {error}"), [])
        except httpx.HTTPError as error:
            return _Page(StatusCategory.NO_ASSOCIATION,
                         self._masked(f"QIDO-RS to {self.service.shown()} failed: {error}"), [])
        return self._page(response)

    def _page(self, response: httpx.Response) -> _Page:
        if response.status_code in (204, 404):  # nothing matches (404: some servers' way)
            return _Page(StatusCategory.SUCCESS, f"HTTP {response.status_code}", [])
        if response.status_code != 200:
            # the status only: a service's error text may echo patient data
            return _Page(StatusCategory.FAILURE, self._masked(
                f"HTTP {response.status_code} {response.reason_phrase}"), [])
        try:
            answers = response.json()
        except ValueError:
            return _Page(StatusCategory.FAILURE, "QIDO-RS answered something not JSON", [])
        if not isinstance(answers, list):
            return _Page(StatusCategory.FAILURE, "QIDO-RS answered JSON that is no list", [])
        return _Page(StatusCategory.SUCCESS, f"{len(answers)} answers", answers)

    def _masked(self, text: str) -> str:
        return self.credentials.mask(text)


def _text(answer: dict[str, Any], tag: int) -> str:
    values = answer.get(f"{tag:08X}", {}).get("Value") or []
    return str(values[0]) if values else ""


def _presence(answers: list[dict[str, Any]], keys: Sequence[int], started: float,
              detail: str) -> PresenceOutcome:
    values: dict[str, dict[int, str]] = {}
    for answer in answers:
        sop_uid = _text(answer, SOP_INSTANCE_UID).strip()
        if sop_uid:
            values[sop_uid] = _values(answer, keys)
    return PresenceOutcome(StatusCategory.SUCCESS, detail, frozenset(values), values,
                           time.monotonic() - started)


def _values(answer: dict[str, Any], keys: Sequence[int]) -> dict[int, str]:
    """The values of `keys` in DICOM string form, read the way a C-FIND answer is."""
    if not keys:
        return {}
    wanted = {f"{key:08X}" for key in keys}
    ds = Dataset.from_json({tag: element for tag, element in answer.items() if tag in wanted})
    return {key: value_text(ds, key) for key in keys}
