"""Study-level C-FIND answers as studies: each answer parsed (UID, date as sent, modalities,
counts, tier, device), the unusable ones counted, and the census's findings noted.

Pure: runner.inventory.cfind asks the source, this module reads what it answered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from pydicom import Dataset

from runner.dicom.peer import Peer
from runner.inventory.census import CensusResult, Seen
from runner.inventory.model import AVAILABILITY_NOTE, AVAILABILITY_TO_LOCATION, Study
from runner.profile.tiers import Location

# Modalities that are not images; a study's primary modality is an image one when it can be.
_NON_IMAGE = frozenset({"SR", "PR", "KO", "DOC", "REG", "SEG", "RWV", "PLAN"})


@dataclass(frozen=True, slots=True)
class StudyAnswer:
    """One study-level answer and the device that gave it."""

    device_id: str
    peer: Peer
    identifier: Dataset


@dataclass(frozen=True, slots=True)
class FoundStudy:
    """A study-level answer, parsed; counts and modalities may still be missing."""

    uid: str
    study_date: date | None
    raw_date: str
    modalities: tuple[str, ...]
    instances: int | None
    availability: str
    patient_id: str
    device_id: str
    peer: Peer
    sop_classes: tuple[str, ...] = ()
    accession: str = ""


def answer_values(ds: Dataset, keyword: str) -> tuple[str, ...]:
    """A multi-valued attribute's values, upper-case, empty ones dropped."""
    value = ds.get(keyword)
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(str(item).strip().upper() for item in items if str(item).strip())


def answer_count(ds: Dataset, keyword: str) -> int | None:
    """A count the source answered, or None when it gave none."""
    text = str(ds.get(keyword, "") or "").strip()
    return int(text) if text.isdigit() else None


def answer_text(ds: Dataset, keyword: str) -> str:
    """A value as text without surrounding spaces ("" when absent or unreadable)."""
    try:
        return str(ds.get(keyword, "") or "").strip()
    except (ValueError, TypeError):  # a value pydicom cannot convert: keep none
        return ""


def parse_study_date(text: str) -> date | None:
    """A DA value as a date; None when empty or not a real YYYYMMDD date."""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def parse_answer(answer: StudyAnswer) -> FoundStudy | None:
    """The study an answer describes; None without a StudyInstanceUID."""
    ds = answer.identifier
    uid = answer_text(ds, "StudyInstanceUID")
    if not uid:
        return None
    raw = raw_date(ds)
    return FoundStudy(
        uid=uid,
        study_date=parse_study_date(raw),
        raw_date=raw,
        modalities=answer_values(ds, "ModalitiesInStudy"),
        instances=answer_count(ds, "NumberOfStudyRelatedInstances"),
        availability=answer_text(ds, "InstanceAvailability").upper(),
        patient_id=answer_text(ds, "PatientID"),
        device_id=answer.device_id,
        peer=answer.peer,
        sop_classes=answer_values(ds, "SOPClassesInStudy"),
        accession=answer_text(ds, "AccessionNumber"),
    )


def raw_date(ds: Dataset) -> str:
    """The StudyDate as the source sent it (pydicom may hold it as text or a DA)."""
    element = ds.get((0x0008, 0x0020))
    if element is None:
        return ""
    value = element.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    if isinstance(value, date):
        return f"{value.year:04d}{value.month:02d}{value.day:02d}"
    return str(value or "").strip()


def seen_in(answer: StudyAnswer) -> Seen:
    """What the census strategy needs of an answer: UID, date, Patient ID."""
    ds = answer.identifier
    return Seen(answer_text(ds, "StudyInstanceUID"), parse_study_date(raw_date(ds)),
                answer_text(ds, "PatientID"))


def found_studies(answers: Iterable[StudyAnswer], notes: list[str]) -> list[FoundStudy]:
    """The usable answers parsed; how many had no StudyInstanceUID is noted."""
    found: list[FoundStudy] = []
    unusable = 0
    for answer in answers:
        parsed = parse_answer(answer)
        if parsed is None:
            unusable += 1
        else:
            found.append(parsed)
    if unusable:
        notes.append(f"{unusable} answers without a StudyInstanceUID ignored")
    return found


def primary_modality(modalities: tuple[str, ...], wanted: Sequence[str]) -> str:
    """The study's modality for the plan: a wanted one, else an image one, else the first."""
    wanted_upper = {m.upper() for m in wanted}
    for candidates in (
        [m for m in modalities if m in wanted_upper],
        [m for m in modalities if m not in _NON_IMAGE],
        list(modalities),
    ):
        if candidates:
            return candidates[0]
    return ""


def _location(availability: str) -> Location | None:
    return AVAILABILITY_TO_LOCATION.get(availability)


def studies_of(found: list[FoundStudy], modalities: Sequence[str], notes: list[str]) -> list[Study]:
    """The inventory's studies; tiers the source did not answer are noted and assumed local."""
    unknown_tier = Counter(
        s.availability or "(none)" for s in found if _location(s.availability) is None
    )
    if unknown_tier:
        shown = ", ".join(f"{value}: {count}" for value, count in sorted(unknown_tier.items()))
        notes.append(
            f"{AVAILABILITY_NOTE} or not recognised for {unknown_tier.total()}"
            f" of {len(found)} studies ({shown}): assumed local"
        )
    return [
        Study(
            study_uid=s.uid,
            study_date=s.study_date,
            modality=primary_modality(s.modalities, modalities),
            instances=s.instances,
            size_mb=None,
            location=_location(s.availability) or Location.LOCAL,
            device=s.device_id,
            patient_id=s.patient_id,
            raw_date=s.raw_date if s.study_date is None else "",
            sop_classes=s.sop_classes,
            accession=s.accession,
        )
        for s in found
    ]


def note_census(result: CensusResult[StudyAnswer], notes: list[str]) -> None:
    """Note the census's splits, learned cap, disagreements and gaps."""
    if result.splits:
        notes.append(f"{result.splits} queries split because their answer was full;"
                     f" {result.queries} study-level queries in all")
    if result.cap is not None:
        notes.append(f"the source answers at most {result.cap} studies per query without "
                     "saying so: learned from answers that disagreed, and every query that "
                     "reached it was split")
    if result.disagreements:
        notes.append(f"{result.disagreements} studies were found by one query and not by "
                     "another that should have matched them (the source matches dates "
                     "differently): both kept in the census")
    for gap in result.gaps:
        notes.append(f"census gap: {gap}; studies may be missing")
