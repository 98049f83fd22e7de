"""C-FIND: one query to one peer; every answer (identifiers, status, failure) is a FindOutcome."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydicom import Dataset
from pynetdicom.association import Association

from runner.dicom.ae import make_ae
from runner.dicom.association import (
    Refusal,
    close_association,
    lost_association,
    open_association,
)
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import STUDY_ROOT_FIND
from runner.dicom.status import StatusCategory, categorize

QUERY_LEVELS = frozenset({"PATIENT", "STUDY", "SERIES", "IMAGE"})


@dataclass(frozen=True, slots=True)
class FindOutcome:
    """The answers of one C-FIND and how it ended.

    `status` is the final DIMSE status, None when the exchange ended at transport level
    (no association, abort, timeout). `identifiers` holds every pending answer received,
    also those received before a failure.
    """

    category: StatusCategory
    status: int | None
    detail: str
    identifiers: list[Dataset] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the peer finished the query with success (or a warning)."""
        return self.category.is_ok


def c_find(
    peer: Peer,
    calling_ae: str,
    settings: DicomSettings,
    level: str,
    query: Dataset,
    model: str = STUDY_ROOT_FIND,
) -> FindOutcome:
    """Send one C-FIND at `level` (PATIENT, STUDY, SERIES, IMAGE) with `query` to `peer`.

    `query` is not modified; QueryRetrieveLevel is set on a copy. Never raises for
    peer failures.
    """
    if level not in QUERY_LEVELS:
        raise ValueError(f"query level must be one of {sorted(QUERY_LEVELS)}: {level!r}")
    started = time.monotonic()
    assoc = open_association(make_ae(calling_ae, settings), peer, settings, [model])
    if isinstance(assoc, Refusal):
        return FindOutcome(assoc.category, None, assoc.detail, [], _since(started))
    try:
        identifier = _with_level(query, level)
        return _collect(assoc, peer, settings, identifier, model, started)
    finally:
        close_association(assoc)


def _with_level(query: Dataset, level: str) -> Dataset:
    identifier = Dataset()
    identifier.update(query)
    identifier.QueryRetrieveLevel = level
    return identifier


def _collect(
    assoc: Association,
    peer: Peer,
    settings: DicomSettings,
    identifier: Dataset,
    model: str,
    started: float,
) -> FindOutcome:
    answers: list[Dataset] = []
    last = time.monotonic()
    for status, answer in assoc.send_c_find(identifier, model):
        if "Status" not in status:
            lost = lost_association(assoc, last, settings)
            return FindOutcome(lost.category, None, lost.detail, answers, _since(started))
        last = time.monotonic()
        code = int(status.Status)
        category = categorize(code)
        if category is StatusCategory.PENDING:
            if answer is not None:
                answers.append(answer)
            continue
        detail = f"{peer} answered 0x{code:04X} after {len(answers)} matches"
        return FindOutcome(category, code, detail, answers, _since(started))
    lost = lost_association(assoc, last, settings)
    return FindOutcome(lost.category, None, lost.detail, answers, _since(started))


def _since(started: float) -> float:
    return time.monotonic() - started
