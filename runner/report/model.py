"""The reports' typed rows: one frozen dataclass per SQL file, fields named as its columns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class RunGroup:
    """Runs that wrote the ledger with one profile file, SHA-256 and runner version."""

    profile_path: str
    profile_sha256: str
    runner_version: str
    runs: int
    first_started: datetime
    last_ended: datetime
    unfinished_runs: int


@dataclass(frozen=True, slots=True)
class Span:
    """The ledger's first and last recorded moments (None for an empty ledger)."""

    first_at: datetime | None
    last_at: datetime | None


@dataclass(frozen=True, slots=True)
class Headline:
    """The executive summary's numbers (GB = 10^9 bytes): the source's (its census), then the
    plan's and what became of it."""

    source_studies: int
    source_instances: int
    source_unknown_counts: int
    gone_studies: int
    uncensused_studies: int
    excluded_studies: int
    planned_studies: int
    planned_instances: int
    unknown_size_studies: int
    planned_gb: float
    received_studies: int
    received_instances: int
    received_gb: float
    migrated_studies: int
    migrated_instances: int
    migrated_gb: float
    verified_studies: int
    verified_instances: int
    verified_gb: float
    destination_instances: int

    @property
    def outstanding_studies(self) -> int:
        """Planned studies not verified."""
        return self.planned_studies - self.verified_studies


@dataclass(frozen=True, slots=True)
class CensusRow:
    """One census of the source: how it was taken, what it found, what a sync found new."""

    taken_at: datetime
    command: str
    method: str
    origin: str
    of_source: bool
    complete: bool
    queries: int
    since: date | None
    cap: int | None
    gaps: int
    studies: int
    instances: int
    unknown_counts: int
    planned: int
    excluded: int
    new_studies: int | None
    changed_studies: int | None
    gone_studies: int | None
    received_after: int


@dataclass(frozen=True, slots=True)
class CensusTotal:
    """What the source holds in one tier, modality or study year (`dimension`, `key`)."""

    dimension: str
    key: str
    studies: int
    instances: int
    unknown_counts: int
    planned: int
    excluded: int
    verified: int


@dataclass(frozen=True, slots=True)
class ExclusionRow:
    """Studies the census found and the plan leaves out, for one reason."""

    reason: str
    studies: int
    instances: int


@dataclass(frozen=True, slots=True)
class StatusCount:
    """Studies in one reconciliation status."""

    status: str
    studies: int
    source_instances: int
    destination_instances: int
    planned_gb: float


@dataclass(frozen=True, slots=True)
class Total:
    """Totals for one phase, tier, modality or study year (`dimension`, `key`)."""

    dimension: str
    key: str
    studies: int
    planned_instances: int
    planned_gb: float
    received_gb: float
    verified_studies: int
    destination_instances: int
    outstanding_studies: int


@dataclass(frozen=True, slots=True)
class Failure:
    """Failures of one step (retrieve, store, quarantine, verify) for one category/reason."""

    step: str
    category: str
    reason: str
    occurrences: int
    studies: int
    instances: int | None


@dataclass(frozen=True, slots=True)
class Throughput:
    """Bytes and instances received in one time bucket from one tier."""

    bucket: datetime
    tier: str
    bytes: int
    instances: int


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """One source device's retrieves, failures, data and speed over its busy time."""

    device: str
    retrieves: int
    failed_retrieves: int
    unfinished_retrieves: int
    redates: int
    mean_retrieve_seconds: float | None
    receipts: int
    bytes: int
    busy_seconds: float
    mb_per_second: float | None


@dataclass(frozen=True, slots=True)
class Periods:
    """Dead (or down) time of one device: how many periods, how many still open, seconds."""

    device: str
    periods: int
    open_periods: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Work:
    """The work the migration caused: retrieves by purpose, repeats, stores, checks."""

    retrieves: int
    migrate_retrieves: int
    repair_retrieves: int
    redate_retrieves: int
    redated_studies: int
    failed_redates: int
    repeat_retrieves: int
    receipts: int
    repeat_receipts: int
    bytes_received: int
    store_attempts: int
    failed_store_attempts: int
    checks: int
    short_checks: int


@dataclass(frozen=True, slots=True)
class StudyException:
    """A study in scope that is not verified, with why and how often it was tried."""

    pseudonym: str
    study_uid: str
    status: str
    tier: str
    modality: str
    study_date: date | None
    device: str | None
    phase: int
    source_instances: int | None
    received_instances: int
    destination_instances: int
    quarantined_instances: int
    attempts: int
    checks: int
    reason: str


@dataclass(frozen=True, slots=True)
class SeriesRow:
    """One series the runner received: instances received, stored, confirmed, set aside."""

    pseudonym: str
    study_uid: str
    series_uid: str
    study_status: str
    received_instances: int
    stored_instances: int
    verified_instances: int
    quarantined_instances: int
    bytes: int


@dataclass(frozen=True, slots=True)
class TranscodeCount:
    """Instances stored in another transfer syntax than received: from, to, how many."""

    transcoded_from: str
    transcoded_to: str
    instances: int
    studies: int


@dataclass(frozen=True, slots=True)
class ObjectKind:
    """One SOP class in one transfer syntax, as received: instances, and how many stored."""

    sop_class_uid: str
    transfer_syntax: str
    instances: int
    stored_instances: int


@dataclass(frozen=True, slots=True)
class ConflictRow:
    """A conflict found at the destination: study, instance, what differed, resolution."""

    pseudonym: str
    study_uid: str
    sop_instance_uid: str
    kind: str
    conflict: str
    resolution: str


@dataclass(frozen=True, slots=True)
class RuleCount:
    """How many instances one morphing rule (by its index in the profile) changed."""

    rule_index: int
    instances: int


@dataclass(frozen=True, slots=True)
class SampleCheck:
    """One instance read back from the destination and compared (None: not compared)."""

    pseudonym: str
    study_uid: str
    sop_instance_uid: str
    ok: bool | None
    differences: str
