"""C-FIND: queries to one peer; every answer (identifiers, status, failure) is a FindOutcome.

Runs on the lean upper layer (runner.dicom.ul.requestor): the thread waiting for answers
blocks in `recv`; verification queries during a run cost no polling. `c_find` asks one
query on an association of its own; a `FindSession` asks many on one association (a census
asks hundreds: an association each cost the source more than the query), opening a new one
when the peer has closed it meanwhile.
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
    with FindSession(peer, calling_ae, settings, model) as session:
        return session.ask(level, query)


class FindSession:
    """C-FINDs to one peer on one association, opened at the first query and kept; `close`
    releases it. A query whose association ends (aborted, closed, released by the peer) when
    it already served one (the peer let it go while idle) is asked once more on a new one."""

    def __init__(self, peer: Peer, calling_ae: str, settings: DicomSettings,
                 model: str = STUDY_ROOT_FIND) -> None:
        self.peer, self.calling_ae, self.settings, self.model = peer, calling_ae, settings, model
        self._assoc: ClientAssociation | None = None
        self._asked = 0  # queries answered on the current association

    def ask(self, level: str, query: Dataset) -> FindOutcome:
        """One C-FIND at `level` with `query` (not modified). Never raises for peer
        failures."""
        if level not in QUERY_LEVELS:
            raise ValueError(f"query level must be one of {sorted(QUERY_LEVELS)}: {level!r}")
        return self.ask_as_is(_with_level(query, level))

    def ask_as_is(self, identifier: Dataset) -> FindOutcome:
        """One C-FIND with `identifier` as given (a worklist query has no level)."""
        reused = self._assoc is not None
        outcome = self._ask(identifier)
        if reused and outcome.category is StatusCategory.ABORTED:
            self.close()  # the peer let the association go meanwhile: a new one (a timeout
            # is not asked again: a slow peer would make the census wait twice)
            outcome = self._ask(identifier)
        return outcome

    def close(self) -> None:
        """Release the association (if one is open)."""
        assoc, self._assoc = self._assoc, None
        if assoc is not None:
            assoc.release()

    def __enter__(self) -> FindSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _ask(self, identifier: Dataset) -> FindOutcome:
        started = time.monotonic()
        if self._assoc is None:
            assoc = ClientAssociation.open(self.peer, self.calling_ae, self.settings,
                                           [Proposal(str(self.model), LITTLE_ENDIAN_SYNTAXES)])
            if isinstance(assoc, Refusal):
                return FindOutcome(assoc.category, None, assoc.detail, [], _since(started))
            self._assoc, self._asked = assoc, 0
        context = self._assoc.context_for(str(self.model), None)
        if context is None:
            self.close()
            detail = f"{self.peer} accepted no context for {self.model}"
            return FindOutcome(StatusCategory.NO_ASSOCIATION, None, detail, [], _since(started))
        self._asked += 1
        outcome = _collect(self._assoc, context, self.peer, identifier, str(self.model),
                           started, self._asked)
        if outcome.status is None:  # aborted or lost: not to be used again
            self._drop()
        return outcome

    def _drop(self) -> None:
        assoc, self._assoc = self._assoc, None
        if assoc is not None:
            assoc.abort()


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
    message_id: int = 1,
) -> FindOutcome:
    syntax = assoc.accepted[context][1]
    command = dimse.encode({
        dimse.AFFECTED_SOP_CLASS: model,
        dimse.COMMAND_FIELD: C_FIND_RQ,
        dimse.MESSAGE_ID: message_id,
        dimse.PRIORITY: 0,
        dimse.DATASET_TYPE: dimse.HAS_DATASET,
    })
    answers: list[Dataset] = []
    message = assoc.exchange(context, command, [datasets.encode(identifier, syntax)])
    while True:
        if isinstance(message, Refusal):
            return FindOutcome(message.category, None, message.detail, answers, _since(started))
        code = status_of(message)
        if not is_response_to(message, C_FIND_RSP, message_id) or code is None:
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
