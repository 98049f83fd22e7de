"""The facts the ledger records, each declared once, here: a frozen dataclass per kind of fact,
validated on creation, with the tables it writes and how (its `write`).

Producers (association threads, the scheduler) build these facts and `Ledger.record` them
(the `Ledger.record_*` methods build some for you), and the writer thread stores them: each
batch kind by kind, in the order the facts are declared here (apply.py), so that what a fact
refers to is written before it (a study is planned before its status changes, a retrieve
starts before it finishes, a run ends last). Every timestamp is timezone-aware and
normalised to UTC here; a naive datetime is refused, because nothing later could tell its zone.

Adding a fact is one edit: a subclass of `LedgerFact` below, a frozen dataclass with its
`write` (its table's columns as runner.ledger.schema has them; a new table needs a new
migration there). `Ledger.record` takes it, the writer writes it, `runner.ledger` exports it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Self

# the shared base and the first facts, in the order of declaration (a batch writes in it)
from runner.ledger.fact import (
    EventKind,
    LedgerFact,
    RetrievePurpose,
    StudyStatus,
    VerificationMethod,
    as_utc,
    declared,
    fix_time,
    need_count,
    need_text,
    new_id,
    utc_now,
)
from runner.ledger.facts_plan import (
    CensusStudy,
    CensusTaken,
    RunStarted,
    StudiesPlanned,
    StudyPlanned,
)
from runner.ledger.tables import Key, Table, first, fold, instance_fact_key, update_each

if TYPE_CHECKING:
    from runner.ledger.tables import Conn

__all__ = [
    "FACT_TYPES", "CensusStudy", "CensusTaken", "EventKind", "EventRecorded", "Fact",
    "InstanceForwarded", "InstanceQuarantined", "InstanceReceived", "LedgerFact",
    "PriorAction", "PriorityRequested", "PriorityResolved",
    "RetrieveFinished", "RetrievePurpose", "RetrieveStarted", "RunEnded", "RunStarted",
    "StudiesPlanned", "StudyPlanned", "StudyStatus", "StudyStatusChanged",
    "VerificationMethod", "VerificationRecorded", "as_utc", "declared", "new_id", "utc_now",
]


_RETRIEVES = Table(
    "retrieves",
    (("retrieve_id", "VARCHAR"), ("study_uid", "VARCHAR"), ("device", "VARCHAR"),
     ("purpose", "VARCHAR"), ("started_at", "TIMESTAMPTZ")),
    "ON CONFLICT (retrieve_id) DO NOTHING",
    Key("retrieve_id", "VARCHAR", lambda row: str(row[0])),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrieveStarted(LedgerFact):
    """A C-MOVE of a whole study was sent to a source device."""

    retrieve_id: str = field(default_factory=new_id)
    study_uid: str
    device: str
    purpose: RetrievePurpose
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        need_text("retrieve_id", self.retrieve_id)
        need_text("study_uid", self.study_uid)
        need_text("device", self.device)
        object.__setattr__(self, "purpose", RetrievePurpose(self.purpose))
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `retrieves`; each new one (but a re-date's) counts an attempt of its
        study."""
        rows = [(f.retrieve_id, f.study_uid, f.device, f.purpose.value, f.at)
                for f in fold(facts, lambda f: f.retrieve_id, first)]
        inserted = _RETRIEVES.insert(conn, rows, upsert, returning="study_uid, purpose")
        attempts = Counter(str(study) for study, purpose in inserted if purpose != "redate")
        update_each(conn, "UPDATE studies SET attempts = attempts + ? WHERE study_uid = ?",
                    [(n, study) for study, n in sorted(attempts.items())])


_RECEIPTS = Table(
    "receipts",
    (("sop_instance_uid", "VARCHAR"), ("study_uid", "VARCHAR"), ("series_uid", "VARCHAR"),
     ("sop_class_uid", "VARCHAR"), ("transfer_syntax", "VARCHAR"), ("retrieve_id", "VARCHAR"),
     ("received_at", "TIMESTAMPTZ"), ("bytes", "BIGINT"), ("spool_name", "VARCHAR"),
     ("checksum", "VARCHAR")),
    "ON CONFLICT (fact_key) DO NOTHING",
    instance_fact_key("sop_instance_uid", "received_at", 0, 6),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceReceived(LedgerFact):
    """An instance was received by the listener and is safely in the spool."""

    sop_instance_uid: str
    study_uid: str
    series_uid: str
    sop_class_uid: str
    transfer_syntax: str
    retrieve_id: str | None
    nbytes: int
    spool_name: str
    checksum: str | None = None  # of the spooled bytes (runner.dicom.spool.content_checksum)
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        for name in ("sop_instance_uid", "study_uid", "spool_name"):
            need_text(name, getattr(self, name))
        need_count("nbytes", self.nbytes)
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `receipts`."""
        rows = [(f.sop_instance_uid, f.study_uid, f.series_uid, f.sop_class_uid,
                 f.transfer_syntax, f.retrieve_id, f.at, f.nbytes, f.spool_name, f.checksum)
                for f in fold(facts, lambda f: (f.sop_instance_uid, f.at), first)]
        _RECEIPTS.insert(conn, rows, upsert)


_FORWARDS = Table(
    "forwards",
    (("sop_instance_uid", "VARCHAR"), ("attempted_at", "TIMESTAMPTZ"), ("study_uid", "VARCHAR"),
     ("ok", "BOOLEAN"), ("status", "INTEGER"), ("reason", "VARCHAR"),
     ("dest_sop_instance_uid", "VARCHAR"), ("transcoded_from", "VARCHAR"),
     ("transcoded_to", "VARCHAR"), ("transcode_reason", "VARCHAR"),
     ("rules_fired", "INTEGER[]")),
    "ON CONFLICT (fact_key) DO NOTHING",
    instance_fact_key("sop_instance_uid", "attempted_at", 0, 1),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceForwarded(LedgerFact):
    """One C-STORE attempt to the destination; `ok` when its status was success or warning.

    `study_uid` is the *source* Study Instance UID (as received), whatever morphing changed;
    `dest_sop_instance_uid` is the UID the destination knows when a morph rule changed it;
    `transcoded_from`/`_to`/`transcode_reason` are set when the instance went in another
    transfer syntax than it was received in (a lossless transcode), with why.
    """

    sop_instance_uid: str
    study_uid: str
    ok: bool
    status: int | None
    reason: str | None = None
    dest_sop_instance_uid: str | None = None
    transcoded_from: str | None = None
    transcoded_to: str | None = None
    transcode_reason: str | None = None
    rules_fired: tuple[int, ...] = ()  # indexes of the morphing rules that changed it
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        need_text("sop_instance_uid", self.sop_instance_uid)
        need_text("study_uid", self.study_uid)
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `forwards`."""
        rows = [(f.sop_instance_uid, f.at, f.study_uid, f.ok, f.status, f.reason,
                 f.dest_sop_instance_uid, f.transcoded_from, f.transcoded_to,
                 f.transcode_reason, list(f.rules_fired))
                for f in fold(facts, lambda f: (f.sop_instance_uid, f.at), first)]
        _FORWARDS.insert(conn, rows, upsert)


_QUARANTINES = Table(
    "quarantines",
    (("sop_instance_uid", "VARCHAR"), ("quarantined_at", "TIMESTAMPTZ"),
     ("study_uid", "VARCHAR"), ("reason", "VARCHAR")),
    "ON CONFLICT (fact_key) DO NOTHING",
    instance_fact_key("sop_instance_uid", "quarantined_at", 0, 1),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceQuarantined(LedgerFact):
    """An instance was set aside (not forwarded) for a reason, until it is received again."""

    sop_instance_uid: str
    study_uid: str
    reason: str
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        for name in ("sop_instance_uid", "study_uid", "reason"):
            need_text(name, getattr(self, name))
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `quarantines`."""
        rows = [(f.sop_instance_uid, f.at, f.study_uid, f.reason)
                for f in fold(facts, lambda f: (f.sop_instance_uid, f.at), first)]
        _QUARANTINES.insert(conn, rows, upsert)


_FINISH = ("UPDATE retrieves SET ended_at = ?, final_status = ?, category = ?, completed = ?,"
           " failed = ?, warning = ?, remaining = ?, failed_uids = ?::VARCHAR[], detail = ?"
           " WHERE retrieve_id = ? AND ended_at IS NULL")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrieveFinished(LedgerFact):
    """The final C-MOVE response of a retrieve: its status and sub-operation counts."""

    retrieve_id: str
    final_status: int | None
    category: str
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    remaining: int | None = None
    failed_uids: tuple[str, ...] = ()
    detail: str | None = None
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        need_text("retrieve_id", self.retrieve_id)
        need_text("category", self.category)
        for name in ("completed", "failed", "warning", "remaining"):
            need_count(name, getattr(self, name))
        object.__setattr__(self, "failed_uids", tuple(self.failed_uids))
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """Its retrieve's end (the first end recorded stays)."""
        rows = [(f.at, f.final_status, f.category, f.completed, f.failed, f.warning,
                 f.remaining, list(f.failed_uids), f.detail, f.retrieve_id)
                for f in fold(facts, lambda f: f.retrieve_id, first)]
        update_each(conn, _FINISH, rows)


_VERIFICATIONS = Table(
    "verifications",
    (("study_uid", "VARCHAR"), ("verified_at", "TIMESTAMPTZ"), ("method", "VARCHAR"),
     ("expected", "INTEGER"), ("found", "INTEGER"), ("missing", "INTEGER"),
     ("missing_uids", "VARCHAR[]"), ("ok", "BOOLEAN"), ("detail", "VARCHAR")),
    "ON CONFLICT (study_uid, verified_at, method) DO NOTHING",
)

_CONFIRMATIONS = Table(
    "confirmations",
    (("sop_instance_uid", "VARCHAR"), ("confirmed_at", "TIMESTAMPTZ"),
     ("study_uid", "VARCHAR"), ("method", "VARCHAR")),
    "ON CONFLICT (fact_key) DO NOTHING",
    instance_fact_key("sop_instance_uid", "confirmed_at", 0, 1),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationRecorded(LedgerFact):
    """The destination was asked about a study; `confirmed_uids` are the source SOP Instance
    UIDs it confirmed (empty for a count-only check, whose `found` then stands alone)."""

    study_uid: str
    method: VerificationMethod
    expected: int | None
    found: int
    missing: int
    ok: bool
    missing_uids: tuple[str, ...] = ()
    confirmed_uids: tuple[str, ...] = ()
    detail: str | None = None
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        need_text("study_uid", self.study_uid)
        for name in ("expected", "found", "missing"):
            need_count(name, getattr(self, name))
        if self.missing < len(self.missing_uids):
            raise ValueError("missing is smaller than the number of missing_uids")
        object.__setattr__(self, "method", VerificationMethod(self.method))
        object.__setattr__(self, "missing_uids", tuple(self.missing_uids))
        object.__setattr__(self, "confirmed_uids", tuple(self.confirmed_uids))
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `verifications`, and one of `confirmations` per confirmed instance."""
        unique = fold(facts, lambda f: (f.study_uid, f.at, f.method), first)
        _VERIFICATIONS.insert(conn, [
            (f.study_uid, f.at, f.method.value, f.expected, f.found, f.missing,
             list(f.missing_uids), f.ok, f.detail) for f in unique], upsert)
        confirmed = {(uid, f.at): (uid, f.at, f.study_uid, f.method.value)
                     for f in reversed(facts) for uid in f.confirmed_uids}
        _CONFIRMATIONS.insert(conn, list(confirmed.values()), upsert)


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyStatusChanged(LedgerFact):
    """The engine moved a study to a new status; an older change never overwrites a newer one."""

    study_uid: str
    status: StudyStatus
    reason: str | None = None
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        need_text("study_uid", self.study_uid)
        object.__setattr__(self, "status", StudyStatus(self.status))
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """Its study's status, unless a newer change is there already."""
        latest = fold(facts, lambda f: f.study_uid, lambda new, old: new.at >= old.at)
        update_each(conn, "UPDATE studies SET status = ?, reason = ?, updated_at = ?"
                    " WHERE study_uid = ? AND updated_at <= ?",
                    [(f.status.value, f.reason, f.at, f.study_uid, f.at) for f in latest])


_EVENTS = Table(
    "events",
    (("event_id", "VARCHAR"), ("occurred_at", "TIMESTAMPTZ"), ("run_id", "VARCHAR"),
     ("kind", "VARCHAR"), ("device", "VARCHAR"), ("study_uid", "VARCHAR"), ("detail", "JSON"),
     ("bytes", "BIGINT")),
    "ON CONFLICT (event_id) DO NOTHING",
    Key("event_id", "VARCHAR", lambda row: str(row[0])),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecorded(LedgerFact):
    """Anything else worth a line in the ledger: device up/down, stalls, dead time, re-dates."""

    event_id: str = field(default_factory=new_id)
    kind: str
    run_id: str | None = None
    device: str | None = None
    study_uid: str | None = None
    detail_json: str | None = None
    nbytes: int | None = None
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        need_text("event_id", self.event_id)
        need_text("kind", self.kind)
        need_count("nbytes", self.nbytes)
        if self.detail_json is not None:
            json.loads(self.detail_json)  # raises ValueError for text that is not JSON
        fix_time(self)

    @staticmethod
    def encode_detail(detail: Mapping[str, object] | None) -> str | None:
        """Detail as stable JSON text (sorted keys), or None."""
        return None if detail is None else json.dumps(detail, sort_keys=True, default=str)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `events`."""
        rows = [(f.event_id, f.at, f.run_id, f.kind, f.device, f.study_uid, f.detail_json,
                 f.nbytes) for f in fold(facts, lambda f: f.event_id, first)]
        _EVENTS.insert(conn, rows, upsert)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnded(LedgerFact):
    """A run finished (normally or by interruption that was caught)."""

    run_id: str
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        need_text("run_id", self.run_id)
        fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """Its run's end (the first end recorded stays)."""
        rows = [(f.at, f.run_id) for f in fold(facts, lambda f: f.run_id, first)]
        update_each(conn, "UPDATE runs SET ended_at = ? WHERE run_id = ? AND ended_at IS NULL",
                    rows)


# the priority lane's facts, declared last (runner.ledger.facts_priority)
from runner.ledger.facts_priority import (  # noqa: E402
    PriorAction,
    PriorityRequested,
    PriorityResolved,
)

FACT_TYPES = declared()  # the facts declared above, then the priority lane's
Fact = LedgerFact
