"""Verification at the destination by C-FIND: which instances of a study it holds, and how many.

"Arrived" means the destination says so: an IMAGE-level Study Root C-FIND for the study
lists its SOP Instance UIDs, with optional return keys whose values can be compared with
the morphed values sent. A PACS that refuses an IMAGE-level query without a series (a
strictly hierarchical one) is asked series by series instead.

`instances_anywhere` asks where given SOP Instance UIDs are held, whatever their study: an
IMAGE-level query by a list of UIDs (PS3.4 C.2.2.2.2) with the study and series as return
keys, the relational form a strictly hierarchical PACS may refuse (its answer says so).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.tag import BaseTag, Tag

from runner.dicom.find import FindOutcome, c_find
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.status import StatusCategory
from runner.morph.text import value_text

_SOP_INSTANCE = Tag(0x0008, 0x0018)


@dataclass(frozen=True, slots=True)
class PresenceOutcome:
    """The instances of a study the destination reports, and their `return_keys` values.

    `values` maps SOP Instance UID -> {tag: value in DICOM string form ("" when empty,
    multiple values joined with a backslash)}.
    """

    category: StatusCategory
    detail: str
    sop_uids: frozenset[str] = frozenset()
    values: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the destination answered the query completely."""
        return self.category.is_ok


@dataclass(frozen=True, slots=True)
class CountOutcome:
    """NumberOfStudyRelatedInstances as the destination reports it (0: no such study)."""

    category: StatusCategory
    detail: str
    count: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the destination answered with a count."""
        return self.category.is_ok and self.count is not None


def instances_present(
    peer: Peer,
    calling_ae: str,
    settings: DicomSettings,
    study_uid: str,
    return_keys: Sequence[int] = (),
) -> PresenceOutcome:
    """The SOP Instance UIDs of `study_uid` at `peer` (and `return_keys` values of each)."""
    keys = [Tag(key) for key in return_keys]
    started = time.monotonic()
    query = _image_query(study_uid, None, keys)
    found = c_find(peer, calling_ae, settings, "IMAGE", query)
    if found.category in (StatusCategory.FAILURE, StatusCategory.UNABLE_TO_PROCESS):
        found = _series_by_series(peer, calling_ae, settings, study_uid, keys) or found
    return _presence(found, keys, started)


# UIDs per list query: at most 64 characters and a separator each, the list stays under the
# 64 KiB a value of Explicit VR Little Endian may hold, with room to spare.
_UIDS_PER_QUERY = 500


def instances_anywhere(
    peer: Peer,
    calling_ae: str,
    settings: DicomSettings,
    sop_uids: Sequence[str],
    return_keys: Sequence[int] = (),
) -> PresenceOutcome:
    """Which of `sop_uids` `peer` holds, in any study (and `return_keys` values of each)."""
    keys = [Tag(key) for key in return_keys]
    started = time.monotonic()
    answers: list[Dataset] = []
    found = FindOutcome(StatusCategory.SUCCESS, 0, "nothing asked", [])
    uids = sorted(set(sop_uids))
    for first in range(0, len(uids), _UIDS_PER_QUERY):
        query = _image_query("", None, keys)
        query.SOPInstanceUID = list(uids[first:first + _UIDS_PER_QUERY])
        found = c_find(peer, calling_ae, settings, "IMAGE", query)
        answers.extend(found.identifiers)
        if not found.ok:
            break
    return _presence(replace(found, identifiers=answers), keys, started)


def study_instance_count(
    peer: Peer, calling_ae: str, settings: DicomSettings, study_uid: str
) -> CountOutcome:
    """How many instances `peer` holds for `study_uid` (STUDY-level C-FIND)."""
    query = Dataset()
    query.StudyInstanceUID = study_uid
    query.NumberOfStudyRelatedInstances = None
    found = c_find(peer, calling_ae, settings, "STUDY", query)
    if not found.ok:
        return CountOutcome(found.category, found.detail, None, found.seconds)
    matches = [ds for ds in found.identifiers if ds.get("StudyInstanceUID") == study_uid]
    if not matches:
        return CountOutcome(found.category, f"{peer} holds no such study", 0, found.seconds)
    value = matches[0].get("NumberOfStudyRelatedInstances")
    if value in (None, ""):
        detail = f"{peer} did not return NumberOfStudyRelatedInstances"
        return CountOutcome(found.category, detail, None, found.seconds)
    return CountOutcome(found.category, found.detail, int(value), found.seconds)


def _image_query(study_uid: str, series_uid: str | None, keys: Sequence[BaseTag]) -> Dataset:
    query = Dataset()
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid or ""
    query.SOPInstanceUID = ""
    for key in keys:
        if key != _SOP_INSTANCE and key not in query:
            query.add_new(key, _vr_of(key), None)
    return query


def _vr_of(tag: BaseTag) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError as error:
        raise ValueError(f"return key {tag} is not in the DICOM dictionary") from error


def _series_by_series(
    peer: Peer, calling_ae: str, settings: DicomSettings, study_uid: str, keys: Sequence[BaseTag]
) -> FindOutcome | None:
    """The IMAGE-level answers gathered one series at a time; None if series are unknown."""
    series_query = Dataset()
    series_query.StudyInstanceUID = study_uid
    series_query.SeriesInstanceUID = ""
    series = c_find(peer, calling_ae, settings, "SERIES", series_query)
    if not series.ok:
        return None
    answers: list[Dataset] = []
    for series_uid in sorted({str(ds.SeriesInstanceUID) for ds in series.identifiers}):
        query = _image_query(study_uid, series_uid, keys)
        found = c_find(peer, calling_ae, settings, "IMAGE", query)
        answers.extend(found.identifiers)
        if not found.ok:
            return FindOutcome(found.category, found.status, found.detail, answers)
    detail = f"{peer} answered series by series ({len(answers)} instances)"
    return FindOutcome(series.category, series.status, detail, answers)


def _presence(found: FindOutcome, keys: Sequence[BaseTag], started: float) -> PresenceOutcome:
    values: dict[str, dict[int, str]] = {}
    for answer in found.identifiers:
        sop_uid = str(answer.get("SOPInstanceUID", "")).strip()
        if sop_uid:
            values[sop_uid] = {int(key): value_text(answer, key) for key in keys}
    seconds = time.monotonic() - started
    sop_uids = frozenset(values)
    return PresenceOutcome(found.category, found.detail, sop_uids, values, seconds)
