"""The facts the ledger records: one frozen dataclass per kind of fact, validated on creation.

Producers (association threads, the scheduler) build these facts, or let the `Ledger.record_*`
methods build them, and the writer thread stores them. Every timestamp is timezone-aware and
normalised to UTC here; a naive datetime is refused, because nothing later could tell its zone.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from runner.inventory.model import Study
from runner.profile.tiers import Location


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnded:
    """A run finished (normally or by interruption that was caught)."""

    run_id: str
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _need_text("run_id", self.run_id)
        _fix_time(self)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class StudiesPlanned:
    """The plan's studies, recorded together: a study planned again takes the new values."""

    studies: tuple[StudyPlanned, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "studies", tuple(self.studies))


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyStatusChanged:
    """The engine moved a study to a new status; an older change never overwrites a newer one."""

    study_uid: str
    status: StudyStatus
    reason: str | None = None
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        _need_text("study_uid", self.study_uid)
        object.__setattr__(self, "status", StudyStatus(self.status))
        _fix_time(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrieveStarted:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrieveFinished:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceReceived:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceForwarded:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceQuarantined:
    """An instance was set aside (not forwarded) for a reason, until it is received again."""

    sop_instance_uid: str
    study_uid: str
    reason: str
    at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        for name in ("sop_instance_uid", "study_uid", "reason"):
            _need_text(name, getattr(self, name))
        _fix_time(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationRecorded:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecorded:
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

    def __post_init__(self) -> None:
        _need_text("study_uid", self.study_uid)
        _need_count("instances", self.instances)
        if self.disposition not in ("planned", "excluded"):
            raise ValueError(f"disposition must be planned or excluded: {self.disposition!r}")
        object.__setattr__(self, "tier", Location(self.tier))


@dataclass(frozen=True, slots=True, kw_only=True)
class CensusTaken:
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


Fact = (
    RunStarted
    | RunEnded
    | StudiesPlanned
    | StudyStatusChanged
    | RetrieveStarted
    | RetrieveFinished
    | InstanceReceived
    | InstanceForwarded
    | InstanceQuarantined
    | VerificationRecorded
    | EventRecorded
    | CensusTaken
)

FACT_TYPES: tuple[type, ...] = (
    RunStarted, RunEnded, StudiesPlanned, StudyStatusChanged, RetrieveStarted, RetrieveFinished,
    InstanceReceived, InstanceForwarded, InstanceQuarantined, VerificationRecorded, EventRecorded,
    CensusTaken,
)
