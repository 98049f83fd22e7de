"""Each study's reconciliation status kept by the writer (`study_status`, schema version 10),
so that `status`, the scheduler's studies to do and resume read one small table instead of
the `reconciliation_detail` view, which joins the census, the plan, the per-study state, the
retrieves and the checks of every study each time it is read.

The view stays the truth: a row here is the view's row for its study (`LIVE`), written again
in the same transaction as every fact that can change it. Which studies a batch touches is
`touched`: every declared fact is listed there, as changing some studies' rows, every row (a
complete census marks studies gone that it does not name), or none; a fact not listed refreshes
every row (tests/unit/test_ledger_study_status.py checks that each is listed). A receipt
changes its study's row only while the study is pending (or excluded): the stream of
instances of studies under way costs one look-up of their status a batch. A few studies are
read by primary key, a few dozen at a time (`_LIVE_SOME`: the view's logic over their rows
only), and only the rows that changed are written: about 7 ms a batch that starts, ends or
checks a study, whatever the number of studies; a plan or a complete census rewrites the
table (0.1 s at 50,000 studies).

`DRIFT` compares the table with the view: `Ledger.close` runs it when PACSMIG_CHECK_STATE is
set (the test suite sets it), and raises if they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.ledger.events import (
    CensusTaken,
    EventRecorded,
    Fact,
    InstanceForwarded,
    InstanceQuarantined,
    InstanceReceived,
    PriorAction,
    PriorityRequested,
    PriorityResolved,
    RetrieveFinished,
    RetrieveStarted,
    RunEnded,
    RunStarted,
    StudiesPlanned,
    StudyStatusChanged,
    VerificationRecorded,
)
from runner.ledger.tables import LOOKUP as _LOOKUP
from runner.ledger.views import AT_SOURCE_CASE, STATUS_CASE

if TYPE_CHECKING:
    from runner.ledger.tables import Conn

STUDY_STATUS = """
CREATE TABLE study_status (
    study_uid         VARCHAR PRIMARY KEY,
    planned           BOOLEAN NOT NULL,
    tier              VARCHAR NOT NULL,
    status            VARCHAR NOT NULL,
    at_source         VARCHAR NOT NULL,
    source_instances  BIGINT,
    planned_mb        DOUBLE,
    reason            VARCHAR
)"""

# The view's row of each study, with what the reads take from the plan and the state.
LIVE = """
SELECT r.study_uid, s.study_uid IS NOT NULL, r.tier, r.status, r.at_source,
       r.source_instances, s.planned_mb, s.reason
FROM reconciliation_detail r
LEFT JOIN studies s USING (study_uid)"""

FILL = (f"INSERT INTO study_status {LIVE}",)

# The same rows for a few studies (bound as a list, four times), each table read for them
# only: the view's FULL OUTER JOIN of the census and the plan keeps DuckDB from pushing a
# filter on the study into it, and reading every study's retrieves and checks for a few of
# them costs 30 ms a batch at 50,000 studies. Its logic is the view's (version 7); the suite
# checks the two agree on every ledger it closes (PACSMIG_CHECK_STATE).
_LIVE_SOME = f"""
WITH c AS (SELECT * FROM census_studies WHERE study_uid = ANY(?::VARCHAR[])),
s AS (SELECT * FROM studies WHERE study_uid = ANY(?::VARCHAR[])),
rep AS (
    SELECT study_uid, count(*) AS retrieves,
           nullif(max(coalesce(completed, 0) + coalesce(failed, 0) + coalesce(warning, 0)
                      + coalesce(remaining, 0)), 0) AS reported
    FROM retrieves WHERE study_uid = ANY(?::VARCHAR[]) AND purpose <> 'redate'
    GROUP BY study_uid
), latest AS (
    SELECT study_uid, arg_max(ok, verified_at) AS ok, arg_max(found, verified_at) AS found
    FROM verifications WHERE study_uid = ANY(?::VARCHAR[]) GROUP BY study_uid
), every_study AS (
    SELECT coalesce(c.study_uid, s.study_uid) AS study_uid, coalesce(s.tier, c.tier) AS tier,
           coalesce(s.status, 'pending') AS engine_status, c.instances AS census_instances,
           s.planned_instances, c.disposition, c.gone_at, c.study_uid IS NOT NULL AS in_census,
           s.study_uid IS NOT NULL AS planned, s.planned_mb, s.reason
    FROM c FULL OUTER JOIN s ON s.study_uid = c.study_uid
), facts AS (
    SELECT e.*, coalesce(e.census_instances, e.planned_instances, rep.reported)
               AS source_instances,
           coalesce(g.received, 0) AS received_instances,
           coalesce(nullif(g.confirmed, 0), l.found, 0) AS destination_instances,
           l.ok AS checked_ok, l.study_uid IS NOT NULL AS checked,
           coalesce(rep.retrieves, 0) AS retrieves
    FROM every_study e
    LEFT JOIN study_state g USING (study_uid)
    LEFT JOIN rep USING (study_uid)
    LEFT JOIN latest l USING (study_uid)
)
SELECT study_uid, planned, tier,
       {STATUS_CASE},
       {AT_SOURCE_CASE},
       source_instances, planned_mb, reason
FROM facts"""

_COLUMNS = ("study_uid", "planned", "tier", "status", "at_source", "source_instances",
            "planned_mb", "reason")
_STORED = (f"SELECT {', '.join(_COLUMNS)} FROM study_status"
           " WHERE study_uid = ANY(?::VARCHAR[])")
_UPDATE = (f"UPDATE study_status SET {', '.join(f'{c} = ?' for c in _COLUMNS[1:])}"
           " WHERE study_uid = ?")
_INSERT = f"INSERT INTO study_status VALUES ({', '.join('?' for _ in _COLUMNS)})"
_RETRIEVED = "SELECT study_uid FROM retrieves WHERE retrieve_id = ANY(?::VARCHAR[])"
# A receipt changes a study's status only from pending (or excluded) to in progress.
_NOT_STARTED = ("SELECT study_uid FROM study_status WHERE study_uid = ANY(?::VARCHAR[])"
                " AND status IN ('pending', 'excluded')")
_REWRITE_FROM = 2_000  # studies touched in one batch beyond which the table is rewritten

# What each fact changes, for `touched`. Named here, not defaulted: a new fact must be placed.
CHANGES_NO_STUDY: tuple[type, ...] = (
    RunStarted, RunEnded, EventRecorded, InstanceForwarded, InstanceQuarantined,
    PriorityRequested, PriorityResolved, PriorAction)
PLACED: tuple[type, ...] = (
    *CHANGES_NO_STUDY, StudyStatusChanged, RetrieveStarted, InstanceReceived,
    VerificationRecorded, StudiesPlanned, RetrieveFinished, CensusTaken)

# Rows of the table and of the view that are not in the other (none when they agree).
DRIFT = f"""
(SELECT * FROM study_status EXCEPT ({LIVE}))
UNION ALL
(({LIVE}) EXCEPT SELECT * FROM study_status)
LIMIT 5"""


def refresh(conn: Conn, facts: Sequence[Fact]) -> None:
    """Bring the rows of the studies `facts` touch up to date with the view (inside the
    writer's transaction, after the facts are written)."""
    studies = touched(conn, facts)
    if studies is None or len(studies) > _REWRITE_FROM:
        conn.execute("DELETE FROM study_status")
        conn.execute(FILL[0])
        return
    ordered = sorted(studies)
    for start in range(0, len(ordered), _LOOKUP):
        _refresh_some(conn, ordered[start:start + _LOOKUP])


def touched(conn: Conn, facts: Sequence[Fact]) -> set[str] | None:
    """The studies whose row `facts` may change; None for every study."""
    studies: set[str] = set()
    retrieves: list[str] = []
    received: set[str] = set()
    for fact in facts:
        if isinstance(fact, CHANGES_NO_STUDY):
            continue
        if isinstance(fact, InstanceReceived):
            received.add(fact.study_uid)
        elif isinstance(fact, StudyStatusChanged | RetrieveStarted | VerificationRecorded):
            studies.add(fact.study_uid)
        elif isinstance(fact, StudiesPlanned):
            studies.update(study.study_uid for study in fact.studies)
        elif isinstance(fact, RetrieveFinished):
            retrieves.append(fact.retrieve_id)
        elif isinstance(fact, CensusTaken) and not (fact.complete and fact.of_source):
            studies.update(study.study_uid for study in fact.studies)  # marks none gone
        else:  # a complete census (it marks studies gone), or a fact not placed above
            return None
    studies.update(_some_of(conn, _RETRIEVED, retrieves))
    studies.update(_some_of(conn, _NOT_STARTED, sorted(received - studies)))
    return studies


def _some_of(conn: Conn, sql: str, keys: list[str]) -> set[str]:
    """The studies `sql` answers for `keys`, asked a few dozen at a time."""
    return {str(study) for start in range(0, len(keys), _LOOKUP)
            for (study,) in conn.execute(sql, [keys[start:start + _LOOKUP]]).fetchall()}


def _refresh_some(conn: Conn, studies: list[str]) -> None:
    """Write the view's rows of a few studies where they differ from the table's."""
    live = {str(row[0]): tuple(row) for row in
            conn.execute(_LIVE_SOME, [studies] * 4).fetchall()}
    stored = {str(row[0]): tuple(row) for row in conn.execute(_STORED, [studies]).fetchall()}
    for study, row in live.items():
        old = stored.get(study)
        if old is None:
            conn.execute(_INSERT, list(row))
        elif old != row:
            conn.execute(_UPDATE, [*row[1:], study])

