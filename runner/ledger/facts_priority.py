"""The priority lane's facts: a request kept when received, and what it was resolved to.

Declared after the work's facts (runner.ledger.events imports this module last): a batch
writes a request before its resolution. A request's patient ID is kept only while the
request is open, to ask the source for the patient's studies when a run serves it; its
resolution erases it (`patient_id` NULL), leaving the masked form the reports show. Each
study a request chose is a row of `priority_studies` with what the lane did with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Self

from runner.ledger.fact import LedgerFact, fix_time, need_count, need_text, utc_now
from runner.ledger.tables import Table, first, fold, update_each

if TYPE_CHECKING:
    from runner.ledger.tables import Conn


class PriorAction(StrEnum):
    """What the lane did with a study a request chose."""

    QUEUED = "queued"              # put at the head of its device's queue
    ADDED = "added"                # not in the plan: added to it, then queued
    VERIFIED = "verified"          # already at the destination: nothing to move
    UNDER_WAY = "under_way"        # already being retrieved, forwarded or checked
    GIVEN_UP = "given_up"          # failed or incomplete in this run: not tried again here
    EXCLUDED = "excluded"          # the plan excludes it (the profile's exclusions stand)
    NOT_IN_RUN = "not_in_run"      # in the plan, but not this run's (--limit): kept for later


PRIORITY_REQUESTS = """
CREATE TABLE priority_requests (
    request_id      VARCHAR PRIMARY KEY,
    received_at     TIMESTAMPTZ NOT NULL,
    trigger         VARCHAR NOT NULL,
    event           VARCHAR,
    patient_masked  VARCHAR NOT NULL,
    patient_id      VARCHAR,
    issuer          VARCHAR,
    due             DATE,
    modality        VARCHAR,
    body_part       VARCHAR,
    resolved_at     TIMESTAMPTZ,
    studies_found   INTEGER,
    outcome         VARCHAR,
    detail          VARCHAR
)"""

PRIORITY_STUDIES = """
CREATE TABLE priority_studies (
    request_id  VARCHAR NOT NULL,
    study_uid   VARCHAR NOT NULL,
    action      VARCHAR NOT NULL,
    chosen_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (request_id, study_uid)
)"""

_REQUESTS = Table(
    "priority_requests",
    (("request_id", "VARCHAR"), ("received_at", "TIMESTAMPTZ"), ("trigger", "VARCHAR"),
     ("event", "VARCHAR"), ("patient_masked", "VARCHAR"), ("patient_id", "VARCHAR"),
     ("issuer", "VARCHAR"), ("due", "DATE"), ("modality", "VARCHAR"),
     ("body_part", "VARCHAR")),
    "ON CONFLICT (request_id) DO NOTHING",
)

_STUDIES = Table(
    "priority_studies",
    (("request_id", "VARCHAR"), ("study_uid", "VARCHAR"), ("action", "VARCHAR"),
     ("chosen_at", "TIMESTAMPTZ")),
    "ON CONFLICT (request_id, study_uid) DO NOTHING",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PriorityRequested(LedgerFact):
    """A request for a patient's priors, as received (the first receipt of it stays)."""

    request_id: str
    at: datetime = field(default_factory=utc_now)
    trigger: str
    event: str = ""
    patient_masked: str
    patient_id: str
    issuer: str = ""
    due: date | None = None
    modality: str = ""
    body_part: str = ""

    def __post_init__(self) -> None:
        need_text("request_id", self.request_id)
        need_text("patient_id", self.patient_id)
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `priority_requests`; a request received again changes nothing."""
        rows = [(f.request_id, f.at, f.trigger, f.event, f.patient_masked, f.patient_id,
                 f.issuer, f.due, f.modality, f.body_part)
                for f in fold(facts, lambda f: f.request_id, first)]
        _REQUESTS.insert(conn, rows, upsert)


@dataclass(frozen=True, slots=True, kw_only=True)
class PriorityResolved(LedgerFact):
    """A request resolved to the patient's studies (or failed: `outcome` says why); the
    request's patient ID is erased."""

    request_id: str
    at: datetime = field(default_factory=utc_now)
    found: int
    outcome: str
    detail: str = ""
    studies: tuple[tuple[str, PriorAction], ...] = ()

    def __post_init__(self) -> None:
        need_text("request_id", self.request_id)
        need_count("found", self.found)
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """The request's resolution (the first stays) and the studies it chose."""
        unique = fold(facts, lambda f: f.request_id, first)
        update_each(conn, "UPDATE priority_requests SET resolved_at = ?, studies_found = ?,"
                    " outcome = ?, detail = ?, patient_id = NULL"
                    " WHERE request_id = ? AND resolved_at IS NULL",
                    [(f.at, f.found, f.outcome, f.detail, f.request_id) for f in unique])
        rows = {(f.request_id, uid): (f.request_id, uid, action.value, f.at)
                for f in reversed(unique) for uid, action in f.studies}
        _STUDIES.insert(conn, list(rows.values()), upsert)
