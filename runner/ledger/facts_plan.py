"""The facts of a run's start, the census and the plan (declared before the work's facts in
runner.ledger.events, which imports this module first: a batch writes them first)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Self

from runner.inventory.model import Study
from runner.ledger.fact import LedgerFact, fix_time, need_count, need_text, new_id, utc_now
from runner.ledger.tables import Table, first, fold, last
from runner.profile.tiers import Location

if TYPE_CHECKING:
    from runner.ledger.tables import Conn


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
        need_text("run_id", self.run_id)
        fix_time(self)

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
        need_text("study_uid", self.study_uid)
        need_count("instances", self.instances)
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
        need_text("census_id", self.census_id)
        need_count("queries", self.queries)
        object.__setattr__(self, "gaps", tuple(self.gaps))
        object.__setattr__(self, "studies", tuple(self.studies))
        fix_time(self)

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
        need_text("study_uid", self.study_uid)
        need_count("planned_instances", self.planned_instances)
        need_count("phase_index", self.phase_index)
        need_count("order_index", self.order_index)
        if self.planned_mb < 0:
            raise ValueError(f"planned_mb must not be negative, got {self.planned_mb}")
        object.__setattr__(self, "tier", Location(self.tier))
        fix_time(self)

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
