"""Conflicts at the destination: what it already holds under a study's UIDs, against the source.

Before a study is retrieved, the destination is asked (image-level C-FIND) which instances it
holds of the study; only when it holds some is the source asked the same, and the two
compared. When it holds nothing of the study, the source's SOP Instance UIDs are looked up
across the whole destination (`elsewhere`). A conflict is the same SOP Instance UID in
another series than the source's, or in another study (a study split or merged at one
archive only, or a UID reused), or the study under another Patient ID than the source's (an
archive that merged two patients). Identifiers are compared, never recorded: a conflict
names UIDs and says that the Patient IDs differ, not what they are.

The comparison is made only where the rules do not change the compared attributes: when they
change PatientID (a mapping), the destination rightly holds another one; when they change
UIDs, the destination holds the instance under new ones. Those comparisons are then left out
(`ConflictCheck.compare_patient`, `compare_series`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PATIENT_ID = 0x00100020
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
RETURN_KEYS = (SERIES_UID, PATIENT_ID)
ANYWHERE_KEYS = (STUDY_UID, SERIES_UID)


@dataclass(frozen=True, slots=True)
class Conflict:
    """One conflict: the instance (None for the study as a whole), what differs, and the
    UIDs on both sides (no patient data)."""

    sop_instance_uid: str | None
    kind: str  # "series", "study" or "patient"
    source_uid: str | None = None  # the series (or study) the source holds it in
    destination_uid: str | None = None  # the series (or study) the destination holds it in

    def describe(self) -> str:
        """In words, for the ledger and the report."""
        if self.kind == "patient":
            return "the destination holds the study under another Patient ID"
        return (f"the destination holds SOP Instance {self.sop_instance_uid} in {self.kind} "
                f"{self.destination_uid}, the source in {self.kind} {self.source_uid}")

    @property
    def skippable(self) -> bool:
        """True when keeping the destination's copy still leaves the study whole there (an
        instance in another series of the same study); another study or patient never is."""
        return self.kind == "series"


@dataclass(frozen=True, slots=True)
class ConflictCheck:
    """Which comparisons the rules leave meaningful."""

    compare_patient: bool
    compare_series: bool


Holdings = Mapping[str, Mapping[int, str]]  # SOP Instance UID -> {SeriesUID, PatientID}


def find_conflicts(check: ConflictCheck, source: Holdings,
                   destination: Holdings) -> list[Conflict]:
    """The conflicts between what the source holds of a study and the destination holds."""
    conflicts: list[Conflict] = []
    if check.compare_patient:
        theirs = {v.get(PATIENT_ID, "") for v in destination.values()} - {""}
        ours = {v.get(PATIENT_ID, "") for v in source.values()} - {""}
        if theirs and ours and theirs != ours:
            conflicts.append(Conflict(None, "patient"))
    if check.compare_series:
        for sop, held in sorted(destination.items()):
            mine = source.get(sop)
            if mine is None:
                continue
            ours_series, theirs_series = mine.get(SERIES_UID, ""), held.get(SERIES_UID, "")
            if ours_series and theirs_series and ours_series != theirs_series:
                conflicts.append(Conflict(sop, "series", ours_series, theirs_series))
    return conflicts


def conflicts_elsewhere(check: ConflictCheck, study_uid: str,
                        elsewhere: Holdings) -> list[Conflict]:
    """The source's instances of `study_uid` the destination holds in another study
    (`elsewhere`: SOP Instance UID -> {StudyUID, ...} as the destination answered)."""
    if not check.compare_series:
        return []  # the rules give the instances new UIDs: the old ones may be anywhere
    return [Conflict(sop, "study", study_uid, held.get(STUDY_UID, ""))
            for sop, held in sorted(elsewhere.items())
            if held.get(STUDY_UID, "") not in ("", study_uid)]
