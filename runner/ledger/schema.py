"""The ledger's DDL and its versioned migrations, applied in order, each in one transaction.

Layout. Instance facts go to insert-only tables keyed by (SOP Instance UID, time), since
version 9 through one column, `fact_key`, 128 bits of the time and a hash of the UID:
`receipts`, `forwards`, `confirmations`, `quarantines`. DuckDB (2.0) runs every
`INSERT ... ON CONFLICT` as a MERGE that scans the whole target table, and an UPDATE joined
to a batch scans it too, while a plain keyed INSERT only touches the primary-key index: so
a receipt, a forward attempt, a confirmation is always a new row, and the cost per instance
stays flat as the ledger grows (see benchmarks/ledger_scale.py). The view `instances` folds
those facts into one row per instance; `reconciliation` is the spec's view, one per study
(the views' text: runner.ledger.views). Since version 7 the writer also keeps each study's
state as facts arrive (runner.ledger.study_state), which the reconciliation reads instead of
folding every instance fact, and `open_instances` folds only the studies with work open.

Timestamps are TIMESTAMPTZ, written and read in UTC (the connection's TimeZone is UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from runner.errors import LedgerError
from runner.ledger import facts_priority, study_state, study_status
from runner.ledger.tables import hashed_key
from runner.ledger.views import (
    INSTANCES_VIEW,
    INSTANCES_VIEW_5,
    OPEN_INSTANCES_VIEW,
    OPEN_STUDIES_VIEW,
    OPEN_STUDIES_VIEW_10,
    RECONCILIATION_DETAIL_VIEW,
    RECONCILIATION_DETAIL_VIEW_6,
    RECONCILIATION_DETAIL_VIEW_7,
    RECONCILIATION_VIEW,
    RECONCILIATION_VIEW_3,
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its version, what it does, and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


_SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL
)"""

_RUNS = """
CREATE TABLE runs (
    run_id          VARCHAR PRIMARY KEY,
    started_at      TIMESTAMPTZ NOT NULL,
    ended_at        TIMESTAMPTZ,
    profile_path    VARCHAR NOT NULL,
    profile_sha256  VARCHAR NOT NULL,
    runner_version  VARCHAR NOT NULL,
    command         VARCHAR NOT NULL
)"""

_STUDIES = """
CREATE TABLE studies (
    study_uid          VARCHAR PRIMARY KEY,
    study_date         DATE,
    modality           VARCHAR NOT NULL,
    tier               VARCHAR NOT NULL CHECK (tier IN ('local', 'nearline', 'offline')),
    device             VARCHAR,
    planned_instances  INTEGER CHECK (planned_instances >= 0),
    planned_mb         DOUBLE NOT NULL CHECK (planned_mb >= 0),
    phase_index        INTEGER NOT NULL,
    order_index        INTEGER NOT NULL,
    planned_at         TIMESTAMPTZ NOT NULL,
    status             VARCHAR NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'active', 'done', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    reason             VARCHAR,
    updated_at         TIMESTAMPTZ NOT NULL
)"""

_RETRIEVES = """
CREATE TABLE retrieves (
    retrieve_id   VARCHAR PRIMARY KEY,
    study_uid     VARCHAR NOT NULL,
    device        VARCHAR NOT NULL,
    purpose       VARCHAR NOT NULL CHECK (purpose IN ('migrate', 'redate', 'repair')),
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    final_status  INTEGER,
    category      VARCHAR,
    completed     INTEGER,
    failed        INTEGER,
    warning       INTEGER,
    remaining     INTEGER,
    failed_uids   VARCHAR[],
    detail        VARCHAR
)"""

_RECEIPTS = """
CREATE TABLE receipts (
    sop_instance_uid  VARCHAR NOT NULL,
    study_uid         VARCHAR NOT NULL,
    series_uid        VARCHAR NOT NULL,
    sop_class_uid     VARCHAR NOT NULL,
    transfer_syntax   VARCHAR NOT NULL,
    retrieve_id       VARCHAR,
    received_at       TIMESTAMPTZ NOT NULL,
    bytes             BIGINT NOT NULL CHECK (bytes >= 0),
    spool_name        VARCHAR NOT NULL,
    PRIMARY KEY (sop_instance_uid, received_at)
)"""

_FORWARDS = """
CREATE TABLE forwards (
    sop_instance_uid       VARCHAR NOT NULL,
    attempted_at           TIMESTAMPTZ NOT NULL,
    study_uid              VARCHAR NOT NULL,
    ok                     BOOLEAN NOT NULL,
    status                 INTEGER,
    reason                 VARCHAR,
    dest_sop_instance_uid  VARCHAR,
    PRIMARY KEY (sop_instance_uid, attempted_at)
)"""

_CONFIRMATIONS = """
CREATE TABLE confirmations (
    sop_instance_uid  VARCHAR NOT NULL,
    confirmed_at      TIMESTAMPTZ NOT NULL,
    study_uid         VARCHAR NOT NULL,
    method            VARCHAR NOT NULL,
    PRIMARY KEY (sop_instance_uid, confirmed_at)
)"""

_QUARANTINES = """
CREATE TABLE quarantines (
    sop_instance_uid  VARCHAR NOT NULL,
    quarantined_at    TIMESTAMPTZ NOT NULL,
    study_uid         VARCHAR NOT NULL,
    reason            VARCHAR NOT NULL,
    PRIMARY KEY (sop_instance_uid, quarantined_at)
)"""

_VERIFICATIONS = """
CREATE TABLE verifications (
    study_uid     VARCHAR NOT NULL,
    verified_at   TIMESTAMPTZ NOT NULL,
    method        VARCHAR NOT NULL,
    expected      INTEGER,
    found         INTEGER NOT NULL,
    missing       INTEGER NOT NULL,
    missing_uids  VARCHAR[] NOT NULL,
    ok            BOOLEAN NOT NULL,
    detail        VARCHAR,
    PRIMARY KEY (study_uid, verified_at, method)
)"""

_EVENTS = """
CREATE TABLE events (
    event_id     VARCHAR PRIMARY KEY,
    occurred_at  TIMESTAMPTZ NOT NULL,
    run_id       VARCHAR,
    kind         VARCHAR NOT NULL,
    device       VARCHAR,
    study_uid    VARCHAR,
    detail       JSON,
    bytes        BIGINT
)"""

# The census: what the source holds, each time it was taken (`censuses`), and every study
# it ever answered, with its latest state (`census_studies`): planned or excluded with its
# reason, the source's count, and when a complete census no longer found it (`gone_at`).
_CENSUSES = """
CREATE TABLE censuses (
    census_id        VARCHAR PRIMARY KEY,
    taken_at         TIMESTAMPTZ NOT NULL,
    run_id           VARCHAR,
    command          VARCHAR NOT NULL,
    method           VARCHAR NOT NULL,
    origin           VARCHAR NOT NULL,
    of_source        BOOLEAN NOT NULL,
    queries          INTEGER NOT NULL,
    complete         BOOLEAN NOT NULL,
    since            DATE,
    cap              INTEGER,
    gaps             VARCHAR[] NOT NULL,
    studies          INTEGER NOT NULL,
    instances        BIGINT NOT NULL,
    unknown_counts   INTEGER NOT NULL,
    planned          INTEGER NOT NULL,
    excluded         INTEGER NOT NULL,
    new_studies      INTEGER,
    changed_studies  INTEGER,
    gone_studies     INTEGER
)"""

_CENSUS_STUDIES = """
CREATE TABLE census_studies (
    study_uid      VARCHAR PRIMARY KEY,
    first_census   VARCHAR NOT NULL,
    first_seen_at  TIMESTAMPTZ NOT NULL,
    last_census    VARCHAR NOT NULL,
    last_seen_at   TIMESTAMPTZ NOT NULL,
    study_date     DATE,
    raw_date       VARCHAR,
    modality       VARCHAR NOT NULL,
    tier           VARCHAR NOT NULL CHECK (tier IN ('local', 'nearline', 'offline')),
    device         VARCHAR,
    instances      INTEGER CHECK (instances >= 0),
    disposition    VARCHAR NOT NULL CHECK (disposition IN ('planned', 'excluded')),
    reason         VARCHAR,
    detail         VARCHAR,
    gone_at        TIMESTAMPTZ
)"""

# Version 9: the instance fact tables keyed by one 128-bit column, the fact's time and a hash
# of the SOP Instance UID (runner.ledger.tables.hashed_key), in place of the composite
# (UID, time): DuckDB looks a one-column key up in its index and scans the whole
# table for a composite one, so a fact written again is found in flat time. Each table is
# rebuilt with its rows (a minute for 10^7 instances), its columns in the same order.
_KEYED_BY_HASH = (
    ("receipts", "received_at", """
    sop_instance_uid  VARCHAR NOT NULL,
    study_uid         VARCHAR NOT NULL,
    series_uid        VARCHAR NOT NULL,
    sop_class_uid     VARCHAR NOT NULL,
    transfer_syntax   VARCHAR NOT NULL,
    retrieve_id       VARCHAR,
    received_at       TIMESTAMPTZ NOT NULL,
    bytes             BIGINT NOT NULL CHECK (bytes >= 0),
    spool_name        VARCHAR NOT NULL,
    checksum          VARCHAR,"""),
    ("forwards", "attempted_at", """
    sop_instance_uid       VARCHAR NOT NULL,
    attempted_at           TIMESTAMPTZ NOT NULL,
    study_uid              VARCHAR NOT NULL,
    ok                     BOOLEAN NOT NULL,
    status                 INTEGER,
    reason                 VARCHAR,
    dest_sop_instance_uid  VARCHAR,
    transcoded_from        VARCHAR,
    transcoded_to          VARCHAR,
    transcode_reason       VARCHAR,
    rules_fired            INTEGER[],"""),
    ("confirmations", "confirmed_at", """
    sop_instance_uid  VARCHAR NOT NULL,
    confirmed_at      TIMESTAMPTZ NOT NULL,
    study_uid         VARCHAR NOT NULL,
    method            VARCHAR NOT NULL,"""),
    ("quarantines", "quarantined_at", """
    sop_instance_uid  VARCHAR NOT NULL,
    quarantined_at    TIMESTAMPTZ NOT NULL,
    study_uid         VARCHAR NOT NULL,
    reason            VARCHAR NOT NULL,"""),
)


def _keyed_by_hash(table: str, at: str, columns: str) -> tuple[str, ...]:
    """The statements that rebuild `table` keyed by the hash of its UID and `at`."""
    return (f"CREATE TABLE {table}_9 ({columns}\n    fact_key          UHUGEINT PRIMARY KEY\n)",
            f"INSERT INTO {table}_9 SELECT *, {hashed_key('sop_instance_uid', at)}"
            f" FROM {table}",
            f"DROP TABLE {table}",
            f"ALTER TABLE {table}_9 RENAME TO {table}")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "fact tables: runs, studies, retrieves, instance facts, verifications, events",
        (_RUNS, _STUDIES, _RETRIEVES, _RECEIPTS, _FORWARDS, _CONFIRMATIONS, _QUARANTINES,
         _VERIFICATIONS, _EVENTS),
    ),
    Migration(2, "read models: views instances and reconciliation",
              (INSTANCES_VIEW, RECONCILIATION_VIEW)),
    Migration(3, "the census of the source: censuses, census_studies; reconciliation over it",
              (_CENSUSES, _CENSUS_STUDIES, RECONCILIATION_DETAIL_VIEW,
               RECONCILIATION_VIEW_3)),
    Migration(4, "forwards: the transcode of an attempt sent in another syntax (from, to, "
                 "why), the morphing rules that changed the instance",
              ("ALTER TABLE forwards ADD COLUMN transcoded_from VARCHAR",
               "ALTER TABLE forwards ADD COLUMN transcoded_to VARCHAR",
               "ALTER TABLE forwards ADD COLUMN transcode_reason VARCHAR",
               "ALTER TABLE forwards ADD COLUMN rules_fired INTEGER[]")),
    Migration(5, "receipts: the content checksum of each spooled instance, checked before a "
                 "file that survived a restart is forwarded",
              ("ALTER TABLE receipts ADD COLUMN checksum VARCHAR", INSTANCES_VIEW_5)),
    Migration(6, "census_studies: the Accession Number as the source answered it and as the "
                 "rules make it, masked unless mask_identifiers is false; in "
                 "reconciliation_detail",
              ("ALTER TABLE census_studies ADD COLUMN accession VARCHAR",
               "ALTER TABLE census_studies ADD COLUMN accession_after VARCHAR",
               RECONCILIATION_DETAIL_VIEW_6)),
    Migration(7, "per-study state kept by the writer (received_instances, "
                 "confirmed_instances, study_state), filled from the facts already there; "
                 "reconciliation_detail over it; the open work: views open_studies and "
                 "open_instances",
              (study_state.RECEIVED_INSTANCES, study_state.CONFIRMED_INSTANCES,
               study_state.STUDY_STATE, *study_state.FILL_7, RECONCILIATION_DETAIL_VIEW_7,
               OPEN_STUDIES_VIEW, OPEN_INSTANCES_VIEW)),
    Migration(8, "the priority lane: priority_requests (each request, its patient ID kept "
                 "only until resolved) and priority_studies (what each request chose)",
              (facts_priority.PRIORITY_REQUESTS, facts_priority.PRIORITY_STUDIES)),
    Migration(9, "instance facts (receipts, forwards, confirmations, quarantines) keyed by "
                 "fact_key, 128 bits of the fact's time and a hash of the SOP Instance UID, "
                 "which a fact written again is looked up by; the per-study state's "
                 "instances keyed by their study's hash, then their own",
              (*(statement for table in _KEYED_BY_HASH for statement in _keyed_by_hash(*table)),
               *study_state.REFILL)),
    Migration(10, "study_status: each study's reconciliation status, kept by the writer, "
                  "filled from the view; open_studies over it",
              (study_status.STUDY_STATUS, *study_status.FILL, OPEN_STUDIES_VIEW_10)),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def current_version(conn: duckdb.DuckDBPyConnection) -> int:
    """The ledger's schema version: 0 for an empty database."""
    if not _has_table(conn, "schema_version"):
        if _has_table(conn, None):
            raise LedgerError("the database has tables but no schema_version: not a ledger")
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(
    conn: duckdb.DuckDBPyConnection, migrations: tuple[Migration, ...] = MIGRATIONS
) -> int:
    """Bring the ledger up to the last of `migrations`; return the version it is now at."""
    found = current_version(conn)
    latest = migrations[-1].version
    if found > latest:
        raise LedgerError(
            f"the ledger has schema version {found}, newer than this pacsmig knows "
            f"({latest}); use the pacsmig that wrote it, or a newer one"
        )
    for migration in migrations:
        if migration.version > found:
            _apply(conn, migration)
    return max(found, latest)


def _apply(conn: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(_SCHEMA_VERSION_TABLE)
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version VALUES (?, ?, now())",
            [migration.version, migration.description],
        )
        conn.execute("COMMIT")
    except duckdb.Error as exc:
        conn.execute("ROLLBACK")
        raise LedgerError(
            f"migration {migration.version} ({migration.description}) failed: {exc}"
        ) from exc


def _has_table(conn: duckdb.DuckDBPyConnection, name: str | None) -> bool:
    sql = "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
    params: list[object] = []
    if name is not None:
        sql += " AND table_name = ?"
        params.append(name)
    row = conn.execute(sql, params).fetchone()
    return bool(row and row[0])
