"""The ledger's DDL and its versioned migrations, applied in order, each in one transaction.

Layout. Instance facts go to insert-only tables keyed by (SOP Instance UID, time):
`receipts`, `forwards`, `confirmations`, `quarantines`. DuckDB (2.0) runs every
`INSERT ... ON CONFLICT` as a MERGE that scans the whole target table, and an UPDATE joined
to a batch scans it too, while a plain keyed INSERT only touches the primary-key index: so
a receipt, a forward attempt, a confirmation is always a new row, and the cost per instance
stays flat as the ledger grows (see benchmarks/ledger_scale.py). The view `instances` folds
those facts into one row per instance; `reconciliation` is the spec's view, one per study.

Timestamps are TIMESTAMPTZ, written and read in UTC (the connection's TimeZone is UTC).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from runner.errors import LedgerError


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

# One row per received instance, described by its latest receipt. The fact tables are
# joined on (sop_instance_uid, study_uid) so that a filter on study_uid reaches every one.
# state: quarantined (set aside after its last receipt), verified (confirmed at the
# destination), forwarded (a successful C-STORE after its last receipt), else received.
_INSTANCES_VIEW = """
CREATE OR REPLACE VIEW instances AS
WITH rec AS (
    SELECT sop_instance_uid, study_uid, max(received_at) AS received_at,
           arg_max({'series_uid': series_uid, 'sop_class_uid': sop_class_uid,
                    'transfer_syntax': transfer_syntax, 'retrieve_id': retrieve_id,
                    'bytes': bytes, 'spool_name': spool_name}, received_at) AS latest
    FROM receipts GROUP BY sop_instance_uid, study_uid
), fwd AS (
    SELECT sop_instance_uid, study_uid,
           max(attempted_at) FILTER (WHERE ok) AS forwarded_at,
           count(*) AS forward_attempts,
           arg_max(status, attempted_at) AS forward_status,
           arg_max(reason, attempted_at) AS forward_reason,
           arg_max(dest_sop_instance_uid, attempted_at) FILTER (WHERE ok)
               AS dest_sop_instance_uid
    FROM forwards GROUP BY sop_instance_uid, study_uid
), conf AS (
    SELECT sop_instance_uid, study_uid, min(confirmed_at) AS verified_at
    FROM confirmations GROUP BY sop_instance_uid, study_uid
), quar AS (
    SELECT sop_instance_uid, study_uid, max(quarantined_at) AS quarantined_at,
           arg_max(reason, quarantined_at) AS reason
    FROM quarantines GROUP BY sop_instance_uid, study_uid
)
SELECT r.sop_instance_uid, r.study_uid, r.latest.series_uid AS series_uid,
       r.latest.sop_class_uid AS sop_class_uid, r.latest.transfer_syntax AS transfer_syntax,
       r.latest.retrieve_id AS retrieve_id, r.received_at, r.latest.bytes AS bytes,
       r.latest.spool_name AS spool_name,
       f.forwarded_at, f.forward_status, coalesce(f.forward_attempts, 0) AS forward_attempts,
       f.forward_reason, f.dest_sop_instance_uid, c.verified_at,
       CASE WHEN q.quarantined_at >= r.received_at THEN q.reason END AS quarantined,
       CASE WHEN q.quarantined_at >= r.received_at THEN 'quarantined'
            WHEN c.verified_at IS NOT NULL THEN 'verified'
            WHEN f.forwarded_at >= r.received_at THEN 'forwarded'
            ELSE 'received' END AS state
FROM rec r
LEFT JOIN fwd f ON f.sop_instance_uid = r.sop_instance_uid AND f.study_uid = r.study_uid
LEFT JOIN conf c ON c.sop_instance_uid = r.sop_instance_uid AND c.study_uid = r.study_uid
LEFT JOIN quar q ON q.sop_instance_uid = r.sop_instance_uid AND q.study_uid = r.study_uid
"""

# Version 5: the view also gives each instance's latest content checksum (the same view,
# with the checksum carried in the receipt's struct and shown).
_INSTANCES_VIEW_5 = _INSTANCES_VIEW.replace(
    "'bytes': bytes, 'spool_name': spool_name}, received_at) AS latest",
    "'bytes': bytes, 'spool_name': spool_name, 'checksum': checksum},\n"
    "                   received_at) AS latest",
).replace("       r.latest.spool_name AS spool_name,",
          "       r.latest.spool_name AS spool_name, r.latest.checksum AS checksum,")

# What each study's instance facts add up to: received, confirmed one by one, reported by
# its (non re-date) retrieves, and its latest check (both reconciliation views use them).
_STUDY_COUNTS = """WITH got AS (
    SELECT study_uid, count(DISTINCT sop_instance_uid) AS received
    FROM receipts GROUP BY study_uid
), conf AS (
    SELECT study_uid, count(DISTINCT sop_instance_uid) AS confirmed
    FROM confirmations GROUP BY study_uid
), reported AS (
    SELECT study_uid, count(*) AS retrieves,
           nullif(max(coalesce(completed, 0) + coalesce(failed, 0) + coalesce(warning, 0)
                      + coalesce(remaining, 0)), 0) AS reported
    FROM retrieves WHERE purpose <> 'redate' GROUP BY study_uid
), latest AS (
    SELECT study_uid, arg_max(ok, verified_at) AS ok, arg_max(found, verified_at) AS found
    FROM verifications GROUP BY study_uid
)"""

# The spec's view. source = planned count, else the largest count a (non re-date) retrieve
# reported; destination = instances confirmed one by one, else the latest check's `found`
# (count-only checks). Status: verified when the latest check is ok and nothing is short;
# failed when the engine gave up; incomplete when checked and short; in_progress once any
# work started; pending otherwise.
_RECONCILIATION_VIEW = f"""
CREATE OR REPLACE VIEW reconciliation AS
{_STUDY_COUNTS}, facts AS (
    SELECT s.study_uid, s.tier, s.status AS engine_status,
           coalesce(s.planned_instances, rep.reported) AS source_instances,
           coalesce(g.received, 0) AS received_instances,
           coalesce(nullif(c.confirmed, 0), l.found, 0) AS destination_instances,
           l.ok AS checked_ok, l.study_uid IS NOT NULL AS checked,
           coalesce(rep.retrieves, 0) AS retrieves
    FROM studies s
    LEFT JOIN got g USING (study_uid)
    LEFT JOIN conf c USING (study_uid)
    LEFT JOIN reported rep USING (study_uid)
    LEFT JOIN latest l USING (study_uid)
)
SELECT study_uid, tier, source_instances, received_instances, destination_instances,
       CASE WHEN checked_ok AND destination_instances >= coalesce(source_instances, 0)
                THEN 'verified'
            WHEN engine_status = 'failed' THEN 'failed'
            WHEN checked THEN 'incomplete'
            WHEN received_instances > 0 OR retrieves > 0 OR engine_status <> 'pending'
                THEN 'in_progress'
            ELSE 'pending' END AS status
FROM facts
"""

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

# Every study the source holds (or held), planned or not, with the spec's columns and the
# census's (study date, modality, whether the source still holds it, why it is excluded).
# source_instances = the census's count, else the planned count, else the largest
# count a (non re-date) retrieve reported. Status as in version 2, and `excluded` for a
# study the census found and the plan leaves out (nothing done with it).
def _reconciliation_detail(census_columns: str = "", columns: str = "") -> str:
    """The view, with `census_columns` of census_studies (`c.`) carried through as
    `columns` (added by later versions)."""
    return f"""
CREATE OR REPLACE VIEW reconciliation_detail AS
{_STUDY_COUNTS}, every_study AS (
    SELECT coalesce(c.study_uid, s.study_uid) AS study_uid,{census_columns}
           coalesce(s.tier, c.tier) AS tier,
           coalesce(c.study_date, s.study_date) AS study_date,
           coalesce(c.modality, s.modality) AS modality,
           coalesce(s.status, 'pending') AS engine_status,
           c.instances AS census_instances, s.planned_instances,
           c.disposition, c.detail AS excluded_because, c.gone_at,
           c.study_uid IS NOT NULL AS in_census
    FROM census_studies c FULL OUTER JOIN studies s ON s.study_uid = c.study_uid
), facts AS (
    SELECT e.*, coalesce(e.census_instances, e.planned_instances, rep.reported)
               AS source_instances,
           coalesce(g.received, 0) AS received_instances,
           coalesce(nullif(c.confirmed, 0), l.found, 0) AS destination_instances,
           l.ok AS checked_ok, l.study_uid IS NOT NULL AS checked,
           coalesce(rep.retrieves, 0) AS retrieves
    FROM every_study e
    LEFT JOIN got g USING (study_uid)
    LEFT JOIN conf c USING (study_uid)
    LEFT JOIN reported rep USING (study_uid)
    LEFT JOIN latest l USING (study_uid)
)
SELECT study_uid, tier, source_instances, received_instances, destination_instances,
       CASE WHEN checked_ok AND destination_instances >= coalesce(source_instances, 0)
                THEN 'verified'
            WHEN engine_status = 'failed' THEN 'failed'
            WHEN checked THEN 'incomplete'
            WHEN received_instances > 0 OR retrieves > 0 OR engine_status <> 'pending'
                THEN 'in_progress'
            WHEN disposition = 'excluded' THEN 'excluded'
            ELSE 'pending' END AS status,
       study_date, modality,
       CASE WHEN gone_at IS NOT NULL THEN 'gone' WHEN in_census THEN 'present'
            ELSE 'not in a census' END AS at_source,
       CASE WHEN disposition = 'excluded' THEN excluded_because END AS excluded_because{columns}
FROM facts
"""


_RECONCILIATION_DETAIL_VIEW = _reconciliation_detail()
# Version 6: the study's Accession Number before and after the rules (masked unless the
# profile said otherwise when the census was recorded).
_RECONCILIATION_DETAIL_VIEW_6 = _reconciliation_detail(
    "\n           c.accession, c.accession_after,", ",\n       accession, accession_after")

# The spec's columns, exactly; `reconciliation_detail` has the census's columns besides.
_RECONCILIATION_VIEW_3 = """
CREATE OR REPLACE VIEW reconciliation AS
SELECT study_uid, tier, source_instances, received_instances, destination_instances, status
FROM reconciliation_detail
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "fact tables: runs, studies, retrieves, instance facts, verifications, events",
        (_RUNS, _STUDIES, _RETRIEVES, _RECEIPTS, _FORWARDS, _CONFIRMATIONS, _QUARANTINES,
         _VERIFICATIONS, _EVENTS),
    ),
    Migration(2, "read models: views instances and reconciliation",
              (_INSTANCES_VIEW, _RECONCILIATION_VIEW)),
    Migration(3, "the census of the source: censuses, census_studies; reconciliation over it",
              (_CENSUSES, _CENSUS_STUDIES, _RECONCILIATION_DETAIL_VIEW,
               _RECONCILIATION_VIEW_3)),
    Migration(4, "forwards: the transcode of an attempt sent in another syntax (from, to, "
                 "why), the morphing rules that changed the instance",
              ("ALTER TABLE forwards ADD COLUMN transcoded_from VARCHAR",
               "ALTER TABLE forwards ADD COLUMN transcoded_to VARCHAR",
               "ALTER TABLE forwards ADD COLUMN transcode_reason VARCHAR",
               "ALTER TABLE forwards ADD COLUMN rules_fired INTEGER[]")),
    Migration(5, "receipts: the content checksum of each spooled instance, checked before a "
                 "file that survived a restart is forwarded",
              ("ALTER TABLE receipts ADD COLUMN checksum VARCHAR", _INSTANCES_VIEW_5)),
    Migration(6, "census_studies: the Accession Number as the source answered it and as the "
                 "rules make it, masked unless mask_identifiers is false; in "
                 "reconciliation_detail",
              ("ALTER TABLE census_studies ADD COLUMN accession VARCHAR",
               "ALTER TABLE census_studies ADD COLUMN accession_after VARCHAR",
               _RECONCILIATION_DETAIL_VIEW_6)),
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
