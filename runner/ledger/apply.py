"""Writing a batch of facts: one bulk statement per kind of fact, in an order that respects
what depends on what (a retrieve is started before it finishes, a study planned before its
status changes).

Inserts: rows travel as one list per column, spread by `unnest`, one statement per kind and
batch (`executemany` costs about 100 times more per row). Each is first a plain keyed INSERT
(`upsert=False`, the fast path: only the primary-key index is touched); if a key already
exists, the writer rolls the batch back and writes it again with `upsert=True`, the
`ON CONFLICT` forms, which DuckDB runs as a MERGE over the whole table. Both paths give the
same state, and the same as writing the facts one at a time in order: duplicates inside a
batch are folded here by the rule the table's conflict clause applies.

Updates (a study's status, a retrieve's final response, a run's end) are few per batch and
go one row at a time by primary key: a few hundred microseconds each whatever the table
size, where a joined UPDATE would scan the whole table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import duckdb

from runner.ledger.events import (
    CensusTaken,
    EventRecorded,
    Fact,
    InstanceForwarded,
    InstanceQuarantined,
    InstanceReceived,
    RetrieveFinished,
    RetrieveStarted,
    RunEnded,
    RunStarted,
    StudiesPlanned,
    StudyStatusChanged,
    VerificationRecorded,
)

Conn = duckdb.DuckDBPyConnection
Row = tuple[object, ...]
F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class _Table:
    """A table written by bulk INSERT, with the conflict clause used on the slow path."""

    name: str
    columns: tuple[tuple[str, str], ...]
    on_conflict: str

    def insert(self, conn: Conn, rows: Sequence[Row], upsert: bool,
               returning: str = "") -> list[Row]:
        """Insert `rows`; with `returning`, the named columns of the rows really inserted."""
        if not rows:
            return []
        names = ", ".join(column for column, _ in self.columns)
        sql = f"INSERT INTO {self.name} ({names}) SELECT {_unnest(self.columns)}"
        if upsert:
            sql += f" {self.on_conflict}"
        if returning:
            sql += f" RETURNING {returning}"
        result = conn.execute(sql, _by_column(rows))
        return [tuple(row) for row in result.fetchall()] if returning else []


def _unnest(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"unnest(?::{sql_type}[]) AS {name}" for name, sql_type in columns)


def _by_column(rows: Sequence[Row]) -> list[list[object]]:
    return [list(column) for column in zip(*rows, strict=True)]


def _update_each(conn: Conn, sql: str, rows: Sequence[Row]) -> None:
    """Run a by-primary-key UPDATE once per row (see the module docstring for why)."""
    for row in rows:
        conn.execute(sql, list(row))


def _fold(facts: Sequence[F], key: Callable[[F], Hashable],
          replaces: Callable[[F, F], bool]) -> list[F]:
    """One fact per key: a later fact takes the place of the kept one when `replaces`."""
    kept: dict[Hashable, F] = {}
    for fact in facts:
        old = kept.get(key(fact))
        if old is None or replaces(fact, old):
            kept[key(fact)] = fact
    return list(kept.values())


def _first(new: object, old: object) -> bool:
    return False


def _last(new: object, old: object) -> bool:
    return True


def _of(facts: Sequence[Fact], kind: type[F]) -> list[F]:
    return [fact for fact in facts if isinstance(fact, kind)]


_RUNS = _Table(
    "runs",
    (("run_id", "VARCHAR"), ("started_at", "TIMESTAMPTZ"), ("profile_path", "VARCHAR"),
     ("profile_sha256", "VARCHAR"), ("runner_version", "VARCHAR"), ("command", "VARCHAR")),
    "ON CONFLICT (run_id) DO NOTHING",
)

_PLAN_COLUMNS = ("study_date", "modality", "tier", "device", "planned_instances",
                 "planned_mb", "phase_index", "order_index")
_STUDIES = _Table(
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

_RETRIEVES = _Table(
    "retrieves",
    (("retrieve_id", "VARCHAR"), ("study_uid", "VARCHAR"), ("device", "VARCHAR"),
     ("purpose", "VARCHAR"), ("started_at", "TIMESTAMPTZ")),
    "ON CONFLICT (retrieve_id) DO NOTHING",
)

_RECEIPT_COLUMNS = (("sop_instance_uid", "VARCHAR"), ("study_uid", "VARCHAR"),
                    ("series_uid", "VARCHAR"), ("sop_class_uid", "VARCHAR"),
                    ("transfer_syntax", "VARCHAR"), ("retrieve_id", "VARCHAR"),
                    ("received_at", "TIMESTAMPTZ"), ("bytes", "BIGINT"),
                    ("spool_name", "VARCHAR"), ("checksum", "VARCHAR"))
_RECEIPTS = _Table("receipts", _RECEIPT_COLUMNS,
                   "ON CONFLICT (sop_instance_uid, received_at) DO NOTHING")

_FORWARDS = _Table(
    "forwards",
    (("sop_instance_uid", "VARCHAR"), ("attempted_at", "TIMESTAMPTZ"), ("study_uid", "VARCHAR"),
     ("ok", "BOOLEAN"), ("status", "INTEGER"), ("reason", "VARCHAR"),
     ("dest_sop_instance_uid", "VARCHAR"), ("transcoded_from", "VARCHAR"),
     ("transcoded_to", "VARCHAR"), ("transcode_reason", "VARCHAR"),
     ("rules_fired", "INTEGER[]")),
    "ON CONFLICT (sop_instance_uid, attempted_at) DO NOTHING",
)

_QUARANTINES = _Table(
    "quarantines",
    (("sop_instance_uid", "VARCHAR"), ("quarantined_at", "TIMESTAMPTZ"),
     ("study_uid", "VARCHAR"), ("reason", "VARCHAR")),
    "ON CONFLICT (sop_instance_uid, quarantined_at) DO NOTHING",
)

_VERIFICATIONS = _Table(
    "verifications",
    (("study_uid", "VARCHAR"), ("verified_at", "TIMESTAMPTZ"), ("method", "VARCHAR"),
     ("expected", "INTEGER"), ("found", "INTEGER"), ("missing", "INTEGER"),
     ("missing_uids", "VARCHAR[]"), ("ok", "BOOLEAN"), ("detail", "VARCHAR")),
    "ON CONFLICT (study_uid, verified_at, method) DO NOTHING",
)

_CONFIRMATIONS = _Table(
    "confirmations",
    (("sop_instance_uid", "VARCHAR"), ("confirmed_at", "TIMESTAMPTZ"),
     ("study_uid", "VARCHAR"), ("method", "VARCHAR")),
    "ON CONFLICT (sop_instance_uid, confirmed_at) DO NOTHING",
)

_EVENTS = _Table(
    "events",
    (("event_id", "VARCHAR"), ("occurred_at", "TIMESTAMPTZ"), ("run_id", "VARCHAR"),
     ("kind", "VARCHAR"), ("device", "VARCHAR"), ("study_uid", "VARCHAR"), ("detail", "JSON"),
     ("bytes", "BIGINT")),
    "ON CONFLICT (event_id) DO NOTHING",
)


def _runs_started(conn: Conn, facts: list[RunStarted], upsert: bool) -> None:
    rows = [(f.run_id, f.at, f.profile_path, f.profile_sha256, f.runner_version, f.command)
            for f in _fold(facts, lambda f: f.run_id, _first)]
    _RUNS.insert(conn, rows, upsert)


def _studies_planned(conn: Conn, facts: list[StudiesPlanned], upsert: bool) -> None:
    studies = [study for fact in facts for study in fact.studies]
    rows = [(f.study_uid, f.study_date, f.modality, f.tier.value, f.device,
             f.planned_instances, f.planned_mb, f.phase_index, f.order_index, f.at, f.at)
            for f in _fold(studies, lambda f: f.study_uid, _last)]
    _STUDIES.insert(conn, rows, upsert)


def _retrieves_started(conn: Conn, facts: list[RetrieveStarted], upsert: bool) -> None:
    rows = [(f.retrieve_id, f.study_uid, f.device, f.purpose.value, f.at)
            for f in _fold(facts, lambda f: f.retrieve_id, _first)]
    inserted = _RETRIEVES.insert(conn, rows, upsert, returning="study_uid, purpose")
    attempts = Counter(str(study) for study, purpose in inserted if purpose != "redate")
    _update_each(conn, "UPDATE studies SET attempts = attempts + ? WHERE study_uid = ?",
                 [(n, study) for study, n in sorted(attempts.items())])


def _receipts(conn: Conn, facts: list[InstanceReceived], upsert: bool) -> None:
    rows = [(f.sop_instance_uid, f.study_uid, f.series_uid, f.sop_class_uid,
             f.transfer_syntax, f.retrieve_id, f.at, f.nbytes, f.spool_name, f.checksum)
            for f in _fold(facts, lambda f: (f.sop_instance_uid, f.at), _first)]
    _RECEIPTS.insert(conn, rows, upsert)


def _forwards(conn: Conn, facts: list[InstanceForwarded], upsert: bool) -> None:
    rows = [(f.sop_instance_uid, f.at, f.study_uid, f.ok, f.status, f.reason,
             f.dest_sop_instance_uid, f.transcoded_from, f.transcoded_to, f.transcode_reason,
             list(f.rules_fired))
            for f in _fold(facts, lambda f: (f.sop_instance_uid, f.at), _first)]
    _FORWARDS.insert(conn, rows, upsert)


def _quarantines(conn: Conn, facts: list[InstanceQuarantined], upsert: bool) -> None:
    rows = [(f.sop_instance_uid, f.at, f.study_uid, f.reason)
            for f in _fold(facts, lambda f: (f.sop_instance_uid, f.at), _first)]
    _QUARANTINES.insert(conn, rows, upsert)


_FINISH = ("UPDATE retrieves SET ended_at = ?, final_status = ?, category = ?, completed = ?,"
           " failed = ?, warning = ?, remaining = ?, failed_uids = ?::VARCHAR[], detail = ?"
           " WHERE retrieve_id = ? AND ended_at IS NULL")


def _retrieves_finished(conn: Conn, facts: list[RetrieveFinished], upsert: bool) -> None:
    rows = [(f.at, f.final_status, f.category, f.completed, f.failed, f.warning, f.remaining,
             list(f.failed_uids), f.detail, f.retrieve_id)
            for f in _fold(facts, lambda f: f.retrieve_id, _first)]
    _update_each(conn, _FINISH, rows)


def _verifications(conn: Conn, facts: list[VerificationRecorded], upsert: bool) -> None:
    unique = _fold(facts, lambda f: (f.study_uid, f.at, f.method), _first)
    _VERIFICATIONS.insert(conn, [
        (f.study_uid, f.at, f.method.value, f.expected, f.found, f.missing,
         list(f.missing_uids), f.ok, f.detail) for f in unique], upsert)
    confirmed = {(uid, f.at): (uid, f.at, f.study_uid, f.method.value)
                 for f in reversed(facts) for uid in f.confirmed_uids}
    _CONFIRMATIONS.insert(conn, list(confirmed.values()), upsert)


def _status_changes(conn: Conn, facts: list[StudyStatusChanged], upsert: bool) -> None:
    latest = _fold(facts, lambda f: f.study_uid, lambda new, old: new.at >= old.at)
    _update_each(conn, "UPDATE studies SET status = ?, reason = ?, updated_at = ?"
                 " WHERE study_uid = ? AND updated_at <= ?",
                 [(f.status.value, f.reason, f.at, f.study_uid, f.at) for f in latest])


def _events(conn: Conn, facts: list[EventRecorded], upsert: bool) -> None:
    rows = [(f.event_id, f.at, f.run_id, f.kind, f.device, f.study_uid, f.detail_json,
             f.nbytes) for f in _fold(facts, lambda f: f.event_id, _first)]
    _EVENTS.insert(conn, rows, upsert)


def _runs_ended(conn: Conn, facts: list[RunEnded], upsert: bool) -> None:
    rows = [(f.at, f.run_id) for f in _fold(facts, lambda f: f.run_id, _first)]
    _update_each(conn, "UPDATE runs SET ended_at = ? WHERE run_id = ? AND ended_at IS NULL",
                 rows)


_CENSUSES = _Table(
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
_CENSUS_STUDIES = _Table(
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


def _censuses(conn: Conn, facts: list[CensusTaken], upsert: bool) -> None:
    for f in sorted(_fold(facts, lambda f: f.census_id, _first), key=lambda f: f.at):
        studies = _fold(list(f.studies), lambda s: s.study_uid, _last)
        planned = sum(1 for s in studies if s.disposition == "planned")
        _CENSUSES.insert(conn, [(
            f.census_id, f.at, f.run_id, f.command, f.method, f.origin, f.of_source, f.queries,
            f.complete, f.since, f.cap, list(f.gaps), len(studies),
            sum(s.instances or 0 for s in studies),
            sum(1 for s in studies if s.instances is None), planned, len(studies) - planned,
            f.new_studies, f.changed_studies, f.gone_studies)], upsert)
        _CENSUS_STUDIES.insert(conn, [
            (s.study_uid, f.census_id, f.at, f.census_id, f.at, s.study_date, s.raw_date,
             s.modality, s.tier.value, s.device, s.instances, s.disposition, s.reason,
             s.detail, None, s.accession, s.accession_after) for s in studies], upsert=True)
        if f.complete and f.of_source:
            conn.execute(_GONE, [f.at, f.at, f.since, f.since])


def write_batch(conn: Conn, facts: Sequence[Fact], upsert: bool) -> None:
    """Write `facts` on `conn` (inside the caller's transaction), fast or upsert path."""
    _runs_started(conn, _of(facts, RunStarted), upsert)
    _censuses(conn, _of(facts, CensusTaken), upsert)
    _studies_planned(conn, _of(facts, StudiesPlanned), upsert)
    _retrieves_started(conn, _of(facts, RetrieveStarted), upsert)
    _receipts(conn, _of(facts, InstanceReceived), upsert)
    _forwards(conn, _of(facts, InstanceForwarded), upsert)
    _quarantines(conn, _of(facts, InstanceQuarantined), upsert)
    _retrieves_finished(conn, _of(facts, RetrieveFinished), upsert)
    _verifications(conn, _of(facts, VerificationRecorded), upsert)
    _status_changes(conn, _of(facts, StudyStatusChanged), upsert)
    _events(conn, _of(facts, EventRecorded), upsert)
    _runs_ended(conn, _of(facts, RunEnded), upsert)
