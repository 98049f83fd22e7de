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
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Self

from runner.inventory.model import Location, Study
from runner.ledger.tables import Table, first, fold, last, update_each

if TYPE_CHECKING:
    from runner.ledger.tables import Conn


class StudyStatus(StrEnum):
    """Where the engine stands with a study (the reconciliation view derives its own status)."""

    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"


class RetrievePurpose(StrEnum):
    """Why a C-MOVE was issued: to migrate, to re-date (instances discarded), to repair gaps."""

    MIGRATE = "migrate"
    REDATE = "redate"
    REPAIR = "repair"


class VerificationMethod(StrEnum):
    """How the destination was asked whether a study arrived."""

    IMAGE_FIND = "image_find"
    COUNT = "count"
    COMMITMENT = "commitment"


class EventKind(StrEnum):
    """The well-known kinds of `EventRecorded`; other kinds are accepted as plain strings."""

    DEVICE_DOWN = "device_down"
    DEVICE_UP = "device_up"
    STALL = "stall"
    THROTTLE_CHANGE = "throttle_change"
    DEAD_TIME_START = "dead_time_start"
    DEAD_TIME_END = "dead_time_end"
    REDATE = "redate"
    STORE_REFUSED = "store_refused"
    SPOOL_FILE_DAMAGED = "spool_file_damaged"
    LISTENER_REFUSED = "listener_refused"  # an association or presentation context
    CONFLICT = "conflict"  # the destination holds a study's UIDs otherwise than the source
    SAMPLE_CHECK = "sample_check"  # an instance read back from the destination and compared


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh identifier for runs, retrieves and events (32 hex digits)."""
    return uuid.uuid4().hex


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is refused because its zone cannot be known."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; the ledger needs aware UTC")
    return value.astimezone(UTC)


def _need_text(name: str, value: str) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")


def _need_count(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


def _fix_time(fact: object, name: str = "at") -> None:
    object.__setattr__(fact, name, as_utc(getattr(fact, name)))


class LedgerFact:
    """A kind of fact: its fields, checked on creation (a frozen dataclass), and `write`, how
    a batch of such facts is stored. Every subclass is a declared fact, in the order of
    declaration (see the module docstring)."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # @dataclass(slots=True) makes a second class of the same name (its __qualname__ is
        # set only afterwards): it takes the place of the first, which keeps the order.
        _DECLARED[f"{cls.__module__}.{cls.__name__}"] = cls

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """Store `facts` (all of this kind, in recorded order) on `conn`, inside the caller's
        transaction: the fast path (`upsert` False) or the one with conflict clauses."""
        raise NotImplementedError(f"{cls.__name__} declares no write")


_DECLARED: dict[str, type[LedgerFact]] = {}  # module.name: the fact, in declaration order


_RUNS = Table(
    "runs",
    (("run_id", "VARCHAR"), ("started_at", "TIMESTAMPTZ"), ("profile_path", "VARCHAR"),
     ("profile_sha256", "VARCHAR"), ("runner_version", "VARCHAR"), ("command", "VARCHAR")),
    "ON CONFLICT (run_id) DO NOTHING",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(LedgerFact):
    """A `pacsmig` command began working on this ledger."""

    run_id: str = field(default_factory=new_id)
    at: datetime = field(default_factory=utc_now)
    profile_path: str
    profile_sha256: str
    runner_version: str
    command: str

    def __post_init__(self) -> None:
        _need_text("run_id", self.run_id)
        _fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `runs`; the first start of a run stays."""
        rows = [(f.run_id, f.at, f.profile_path, f.profile_sha256, f.runner_version, f.command)
                for f in fold(facts, lambda f: f.run_id, first)]
        _RUNS.insert(conn, rows, upsert)


@dataclass(frozen=True, slots=True, kw_only=True)
class CensusStudy:
    """One study the census found: what the source says of it, and what the plan does with
    it (`planned`, or `excluded` with the reason and its detail in words)."""

    study_uid: str
    study_date: date | None
    raw_date: str
    modality: str
    tier: Location
    device: str | None
    instances: int | None
    disposition: str
    reason: str | None = None
    detail: str | None = None
    accession: str | None = None  # as the source answered it, masked unless told not to
    accession_after: str | None = None  # as the rules make it, masked alike

    def __post_init__(self) -> None:
        _need_text("study_uid", self.study_uid)
        _need_count("instances", self.instances)
        if self.disposition not in ("planned", "excluded"):
            raise ValueError(f"disposition must be planned or excluded: {self.disposition!r}")
        object.__setattr__(self, "tier", Location(self.tier))


_CENSUSES = Table(
    "censuses",
    (("census_id", "VARCHAR"), ("taken_at", "TIMESTAMPTZ"), ("run_id", "VARCHAR"),
     ("command", "VARCHAR"), ("method", "VARCHAR"), ("origin", "VARCHAR"),
     ("of_source", "BOOLEAN"), ("queries", "INTEGER"), ("complete", "BOOLEAN"),
     ("since", "DATE"), ("cap", "INTEGER"), ("gaps", "VARCHAR[]"), ("studies", "INTEGER"),
     ("instances", "BIGINT"), ("unknown_counts", "INTEGER"), ("planned", "INTEGER"),
     ("excluded", "INTEGER"), ("new_studies", "INTEGER"), ("changed_studies", "INTEGER"),
     ("gone_studies", "INTEGER")),
    "ON CONFLICT (census_id) DO NOTHING",
)

_CENSUS_STATE = ("study_date", "raw_date", "modality", "tier", "device", "instances",
                 "disposition", "reason", "detail", "accession", "accession_after")
# Always written with its conflict clause: a later census finds the same studies again.
_CENSUS_STUDIES = Table(
    "census_studies",
    (("study_uid", "VARCHAR"), ("first_census", "VARCHAR"), ("first_seen_at", "TIMESTAMPTZ"),
     ("last_census", "VARCHAR"), ("last_seen_at", "TIMESTAMPTZ"), ("study_date", "DATE"),
     ("raw_date", "VARCHAR"), ("modality", "VARCHAR"), ("tier", "VARCHAR"),
     ("device", "VARCHAR"), ("instances", "INTEGER"), ("disposition", "VARCHAR"),
     ("reason", "VARCHAR"), ("detail", "VARCHAR"), ("gone_at", "TIMESTAMPTZ"),
     ("accession", "VARCHAR"), ("accession_after", "VARCHAR")),
    "ON CONFLICT (study_uid) DO UPDATE SET last_census = excluded.last_census, "
    "last_seen_at = excluded.last_seen_at, gone_at = NULL, "
    + ", ".join(f"{c} = excluded.{c}" for c in _CENSUS_STATE)
    + " WHERE census_studies.last_seen_at <= excluded.last_seen_at",
)

_GONE = ("UPDATE census_studies SET gone_at = ? WHERE gone_at IS NULL AND last_seen_at < ?"
         " AND (?::DATE IS NULL OR study_date >= ?::DATE)")


@dataclass(frozen=True, slots=True, kw_only=True)
class CensusTaken(LedgerFact):
    """The source's census, with every study it found (one statement for all of them).

    A complete census of the whole source (`since` None) marks the studies it no longer
    found as gone; a partial one (`since`) only those dated since then.
    """

    census_id: str = field(default_factory=new_id)
    at: datetime = field(default_factory=utc_now)
    run_id: str | None = None
    command: str
    method: str
    origin: str
    of_source: bool
    queries: int
    complete: bool
    since: date | None = None
    cap: int | None = None
    gaps: tuple[str, ...] = ()
    studies: tuple[CensusStudy, ...]
    new_studies: int | None = None
    changed_studies: int | None = None
    gone_studies: int | None = None

    def __post_init__(self) -> None:
        _need_text("census_id", self.census_id)
        _need_count("queries", self.queries)
        object.__setattr__(self, "gaps", tuple(self.gaps))
        object.__setattr__(self, "studies", tuple(self.studies))
        _fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `censuses` with its sums, a row of `census_studies` per study (the
        latest census's values win), and the studies a complete census no longer found
        marked gone."""
        for f in sorted(fold(facts, lambda f: f.census_id, first), key=lambda f: f.at):
            studies = fold(list(f.studies), lambda s: s.study_uid, last)
            planned = sum(1 for s in studies if s.disposition == "planned")
            _CENSUSES.insert(conn, [(
                f.census_id, f.at, f.run_id, f.command, f.method, f.origin, f.of_source,
                f.queries, f.complete, f.since, f.cap, list(f.gaps), len(studies),
                sum(s.instances or 0 for s in studies),
                sum(1 for s in studies if s.instances is None), planned,
                len(studies) - planned, f.new_studies, f.changed_studies,
                f.gone_studies)], upsert)
            _CENSUS_STUDIES.insert(conn, [
                (s.study_uid, f.census_id, f.at, f.census_id, f.at, s.study_date, s.raw_date,
                 s.modality, s.tier.value, s.device, s.instances, s.disposition, s.reason,
                 s.detail, None, s.accession, s.accession_after) for s in studies],
                upsert=True)
            if f.complete and f.of_source:
                conn.execute(_GONE, [f.at, f.at, f.since, f.since])


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyPlanned:
    """A study's place in the plan: what the source says of it and where it is in the order.

    A value, recorded through `StudiesPlanned` (the plan is written in one statement).
    """

    study_uid: str
    study_date: date | None
    modality: str
    tier: Location
    device: str | None
    planned_instances: int | None
    planned_mb: float
    phase_index: int
    order_index: int
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _need_text("study_uid", self.study_uid)
        _need_count("planned_instances", self.planned_instances)
        _need_count("phase_index", self.phase_index)
        _need_count("order_index", self.order_index)
        if self.planned_mb < 0:
            raise ValueError(f"planned_mb must not be negative, got {self.planned_mb}")
        object.__setattr__(self, "tier", Location(self.tier))
        _fix_time(self)

    @classmethod
    def from_study(
        cls, study: Study, *, phase_index: int, order_index: int, at: datetime | None = None
    ) -> StudyPlanned:
        """The plan fact for an inventory study (its patient ID is deliberately left out)."""
        return cls(
            study_uid=study.study_uid,
            study_date=study.study_date,
            modality=study.modality,
            tier=study.location,
            device=study.device,
            planned_instances=study.instances,
            planned_mb=study.estimated_mb,
            phase_index=phase_index,
            order_index=order_index,
            at=at or utc_now(),
        )


_PLAN_COLUMNS = ("study_date", "modality", "tier", "device", "planned_instances",
                 "planned_mb", "phase_index", "order_index")
_STUDIES = Table(
    "studies",
    (("study_uid", "VARCHAR"), ("study_date", "DATE"), ("modality", "VARCHAR"),
     ("tier", "VARCHAR"), ("device", "VARCHAR"), ("planned_instances", "INTEGER"),
     ("planned_mb", "DOUBLE"), ("phase_index", "INTEGER"), ("order_index", "INTEGER"),
     ("planned_at", "TIMESTAMPTZ"), ("updated_at", "TIMESTAMPTZ")),
    "ON CONFLICT (study_uid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*_PLAN_COLUMNS, "planned_at"))
    + f" WHERE ({', '.join(f'studies.{c}' for c in _PLAN_COLUMNS)})"
    + f" IS DISTINCT FROM ({', '.join(f'excluded.{c}' for c in _PLAN_COLUMNS)})",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StudiesPlanned(LedgerFact):
    """The plan's studies, recorded together: a study planned again takes the new values."""

    studies: tuple[StudyPlanned, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "studies", tuple(self.studies))

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """A row of `studies` per study; a study planned again takes the latest values."""
        studies = [study for fact in facts for study in fact.studies]
        rows = [(f.study_uid, f.study_date, f.modality, f.tier.value, f.device,
                 f.planned_instances, f.planned_mb, f.phase_index, f.order_index, f.at, f.at)
                for f in fold(studies, lambda f: f.study_uid, last)]
        _STUDIES.insert(conn, rows, upsert)


_RETRIEVES = Table(
    "retrieves",
    (("retrieve_id", "VARCHAR"), ("study_uid", "VARCHAR"), ("device", "VARCHAR"),
     ("purpose", "VARCHAR"), ("started_at", "TIMESTAMPTZ")),
    "ON CONFLICT (retrieve_id) DO NOTHING",
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
        _need_text("retrieve_id", self.retrieve_id)
        _need_text("study_uid", self.study_uid)
        _need_text("device", self.device)
        object.__setattr__(self, "purpose", RetrievePurpose(self.purpose))
        _fix_time(self)

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
    "ON CONFLICT (sop_instance_uid, received_at) DO NOTHING",
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
            _need_text(name, getattr(self, name))
        _need_count("nbytes", self.nbytes)
        _fix_time(self)

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
    "ON CONFLICT (sop_instance_uid, attempted_at) DO NOTHING",
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
        _need_text("sop_instance_uid", self.sop_instance_uid)
        _need_text("study_uid", self.study_uid)
        _fix_time(self)

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
    "ON CONFLICT (sop_instance_uid, quarantined_at) DO NOTHING",
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
            _need_text(name, getattr(self, name))
        _fix_time(self)

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
        _need_text("retrieve_id", self.retrieve_id)
        _need_text("category", self.category)
        for name in ("completed", "failed", "warning", "remaining"):
            _need_count(name, getattr(self, name))
        object.__setattr__(self, "failed_uids", tuple(self.failed_uids))
        _fix_time(self)

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
    "ON CONFLICT (sop_instance_uid, confirmed_at) DO NOTHING",
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
        _need_text("study_uid", self.study_uid)
        for name in ("expected", "found", "missing"):
            _need_count(name, getattr(self, name))
        if self.missing < len(self.missing_uids):
            raise ValueError("missing is smaller than the number of missing_uids")
        object.__setattr__(self, "method", VerificationMethod(self.method))
        object.__setattr__(self, "missing_uids", tuple(self.missing_uids))
        object.__setattr__(self, "confirmed_uids", tuple(self.confirmed_uids))
        _fix_time(self)

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
        _need_text("study_uid", self.study_uid)
        object.__setattr__(self, "status", StudyStatus(self.status))
        _fix_time(self)

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
        _need_text("event_id", self.event_id)
        _need_text("kind", self.kind)
        _need_count("nbytes", self.nbytes)
        if self.detail_json is not None:
            json.loads(self.detail_json)  # raises ValueError for text that is not JSON
        _fix_time(self)

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
        _need_text("run_id", self.run_id)
        _fix_time(self)

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """Its run's end (the first end recorded stays)."""
        rows = [(f.at, f.run_id) for f in fold(facts, lambda f: f.run_id, first)]
        update_each(conn, "UPDATE runs SET ended_at = ? WHERE run_id = ? AND ended_at IS NULL",
                    rows)


def declared() -> tuple[type[LedgerFact], ...]:
    """Every declared fact, in the order of declaration: the order each batch is written in."""
    return tuple(_DECLARED.values())


FACT_TYPES = declared()  # the facts declared above
Fact = LedgerFact
