"""The priority lane's pure core: a request for a patient's priors (from HL7, the worklist, a
CSV clinic list or the command line) and the choice of the studies it moves.

A request names a patient as the hospital knows them now (the new PACS's or the RIS's ID,
with its issuer when given) and when the priors are needed. `source_ids` maps that ID back
through the morphing rules' patient-ID lookup tables to the IDs the old PACS holds; `choose`
picks, from the patient's studies at the source, the ones the profile's rules send first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from runner.morph.actions import MapValues
from runner.morph.ruleset import RuleSet

PATIENT_ID = 0x00100020


class Trigger(StrEnum):
    """Where a priority request came from."""

    HL7 = "hl7"
    WORKLIST = "worklist"
    CSV = "csv"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class PriorityRequest:
    """A patient whose priors the hospital expects by `due` (None: as soon as possible).

    `reference` identifies the request at its origin (an HL7 message control ID, a worklist
    entry's accession and step, a CSV line's content): the same request received again (a
    resent message, a CSV or worklist read again) has the same `request_id` and is kept once.
    `modality` and `body_part` are the order's, for rules that choose priors like it.
    """

    trigger: Trigger
    patient_id: str
    received_at: datetime
    issuer: str = ""
    due: date | None = None
    modality: str = ""
    body_part: str = ""
    reference: str = ""
    event: str = ""  # what asked: "ORM^O01", "worklist", "csv line 3"...

    def __post_init__(self) -> None:
        if not self.patient_id.strip():
            raise ValueError("a priority request needs a patient ID")
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        object.__setattr__(self, "received_at", self.received_at.astimezone(UTC))
        object.__setattr__(self, "patient_id", self.patient_id.strip())

    @property
    def request_id(self) -> str:
        """Stable across re-deliveries of the same request (32 hex digits)."""
        key = "\x1f".join((self.trigger.value, self.reference or "", self.patient_id,
                           self.issuer, self.due.isoformat() if self.due else "",
                           self.modality, self.body_part))
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PriorRules:
    """Which of a patient's studies a request moves (profile `priority.rules`)."""

    max_studies: int | None = None      # the most recent N (None: all)
    max_age_years: float | None = None  # none older than this before the request's date
    same_modality: bool = False         # only studies with the order's modality
    same_body_part: bool = False        # only studies with the order's body part


@dataclass(frozen=True, slots=True)
class Candidate:
    """One of the patient's studies at the source, as the choice needs it."""

    study_uid: str
    study_date: date | None
    modalities: frozenset[str]
    body_parts: frozenset[str] = frozenset()


def choose(request: PriorityRequest, candidates: Iterable[Candidate],
           rules: PriorRules) -> list[str]:
    """The study UIDs the request moves, most recent first.

    A rule that needs what the request or the study does not say (no modality in the order,
    no body part answered for the study) does not narrow the choice: a prior that may be
    needed is not left behind. An undated study passes the age rule (its age is unknown) and
    comes last.
    """
    on = request.due or request.received_at.date()
    chosen = []
    for study in candidates:
        if rules.same_modality and request.modality and study.modalities \
                and request.modality.upper() not in {m.upper() for m in study.modalities}:
            continue
        if rules.same_body_part and request.body_part and study.body_parts \
                and request.body_part.upper() not in {b.upper() for b in study.body_parts}:
            continue
        if rules.max_age_years is not None and study.study_date is not None \
                and (on - study.study_date).days > rules.max_age_years * 365.25:
            continue
        chosen.append(study)
    chosen.sort(key=lambda c: (c.study_date is None, -(c.study_date or date.min).toordinal(),
                               c.study_uid))
    if rules.max_studies is not None:
        chosen = chosen[:rules.max_studies]
    return [c.study_uid for c in chosen]


def patient_id_tables(rules: RuleSet) -> list[Mapping[str, str]]:
    """The lookup tables of the rules that map PatientID (old ID -> new ID)."""
    return [rule.action.table.entries for rule in rules.rules
            if isinstance(rule.action, MapValues) and rule.action.tag == PATIENT_ID]


def source_ids(patient_id: str, tables: Iterable[Mapping[str, str]]) -> list[str]:
    """The patient IDs the source may hold the patient under: the ID itself, and each `from`
    value that the morphing rules' PatientID lookup tables map to it (the new PACS's ID
    mapped back to the old one's)."""
    found = [patient_id]
    for table in tables:
        found += sorted(old for old, new in table.items() if new == patient_id
                        and old not in found)
    return found
