"""C-FIND: one query to one peer; every answer (identifiers, status, failure) is a FindOutcome.

Runs on the lean upper layer (runner.dicom.ul.requestor): the thread waiting for answers
blocks in `recv`; verification queries during a run cost no polling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydicom import Dataset

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.refusal import Refusal
from runner.dicom.sop import STUDY_ROOT_FIND
from runner.dicom.status import StatusCategory, categorize, status_text
from runner.dicom.ul import datasets, dimse
from runner.dicom.ul.requestor import (
    LITTLE_ENDIAN_SYNTAXES,
    ClientAssociation,
    Proposal,
    is_response_to,
    status_of,
)

C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
_MESSAGE_ID = 1

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
    assoc = ClientAssociation.open(peer, calling_ae, settings,
                                   [Proposal(str(model), LITTLE_ENDIAN_SYNTAXES)])
    if isinstance(assoc, Refusal):
        return FindOutcome(assoc.category, None, assoc.detail, [], _since(started))
    try:
        context = assoc.context_for(str(model), None)
        if context is None:
            detail = f"{peer} accepted no context for {model}"
            return FindOutcome(StatusCategory.NO_ASSOCIATION, None, detail, [], _since(started))
        identifier = _with_level(query, level)
        return _collect(assoc, context, peer, identifier, str(model), started)
    finally:
        assoc.release()


def _with_level(query: Dataset, level: str) -> Dataset:
    identifier = Dataset()
    identifier.update(query)
    identifier.QueryRetrieveLevel = level
    return identifier


def _collect(
    assoc: ClientAssociation,
    context: int,
    peer: Peer,
    identifier: Dataset,
    model: str,
    started: float,
) -> FindOutcome:
    syntax = assoc.accepted[context][1]
    command = dimse.encode({
        dimse.AFFECTED_SOP_CLASS: model,
        dimse.COMMAND_FIELD: C_FIND_RQ,
        dimse.MESSAGE_ID: _MESSAGE_ID,
        dimse.PRIORITY: 0,
        dimse.DATASET_TYPE: dimse.HAS_DATASET,
    })
    answers: list[Dataset] = []
    message = assoc.exchange(context, command, [datasets.encode(identifier, syntax)])
    while True:
        if isinstance(message, Refusal):
            return FindOutcome(message.category, None, message.detail, answers, _since(started))
        code = status_of(message)
        if not is_response_to(message, C_FIND_RSP, _MESSAGE_ID) or code is None:
            assoc.abort()
            detail = f"{peer} answered a C-FIND with something else than its response"
            return FindOutcome(StatusCategory.ABORTED, None, detail, answers, _since(started))
        category = categorize(code)
        if category is not StatusCategory.PENDING:
            detail = f"{peer} answered {status_text(code)} after {len(answers)} matches"
            return FindOutcome(category, code, detail, answers, _since(started))
        if message.fragments:
            try:
                answers.append(datasets.decode(message.dataset(), syntax))
            except Exception as error:  # pydicom raises many kinds on garbage
                assoc.abort()
                detail = f"{peer} sent an unreadable C-FIND answer: {error}"
                return FindOutcome(StatusCategory.FAILURE, None, detail, answers,
                                   _since(started))
        message = assoc.receive()


def _since(started: float) -> float:
    return time.monotonic() - started
