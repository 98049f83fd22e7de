"""Per-study state kept by the writer as facts arrive: which instances each study has received
and had confirmed (`received_instances`, `confirmed_instances`: one row per instance and
study, written once) and the study's counters (`study_state`), so that status, the
reconciliation and resume read one row per study instead of folding every instance fact.

Keys. An instance of a study is keyed by 64 bits of the MD5 of its study's UID, then 64 of
its SOP Instance UID's (`INSTANCE_KEY`, 128 bits, one column; version 7 hashed both at once): a
small index, one DuckDB can look keys up in (it scans the whole table for a composite key),
and one whose new keys of a study go to one part of it.

Cost. A new instance is a plain keyed INSERT, like its fact; the counters of the few studies
a batch touches are updated one row at a time by primary key (a few hundred microseconds
each, whatever the table size). An instance received or confirmed again (a re-receipt, a
second check, a replay) makes the plain INSERT fail, and the writer writes the batch again
with the batch's keys looked up in the index a few dozen at a time (flat, where `ON
CONFLICT` would scan the table): only the instances really new are inserted and counted, so
writing a fact twice changes no counter (the facts' own keys are looked up alike:
runner.ledger.tables).

`received_bytes` is the size of each instance's first receipt (a re-receipt of the same
instance is not counted again).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.ledger.events import Fact, InstanceReceived, VerificationRecorded
from runner.ledger.tables import md5_number_lower

if TYPE_CHECKING:
    from runner.ledger.tables import Conn, Row

RECEIVED_INSTANCES = """
CREATE TABLE received_instances (
    instance_key  UHUGEINT PRIMARY KEY,
    study_uid     VARCHAR NOT NULL,
    bytes         BIGINT NOT NULL
)"""

CONFIRMED_INSTANCES = """
CREATE TABLE confirmed_instances (
    instance_key  UHUGEINT PRIMARY KEY,
    study_uid     VARCHAR NOT NULL
)"""

STUDY_STATE = """
CREATE TABLE study_state (
    study_uid       VARCHAR PRIMARY KEY,
    received        BIGINT NOT NULL,
    received_bytes  BIGINT NOT NULL,
    confirmed       BIGINT NOT NULL
)"""

# Version 7's key: 128 bits of MD5 of 'sop/study', random (history: migration 7 fills with
# it, migration 9 fills again with `INSTANCE_KEY`).
INSTANCE_KEY_7 = "md5_number({sop} || '/' || {study})"
# The key since version 9: 64 bits of MD5 of the study UID, then 64 of the SOP Instance UID.
# A study's instances arrive together and share the upper half, so they go to one part of
# the index, which a commit pages in once per study (random keys page in a part each).
INSTANCE_KEY = ("((md5_number_lower({study})::UHUGEINT << 64)"
                " | md5_number_lower({sop})::UHUGEINT)")


def _fill(key: str) -> tuple[str, ...]:
    """Filling the tables from the facts already in a ledger, with instance keys `key`."""
    return (
        f"""INSERT INTO received_instances
            SELECT {key.format(sop='sop_instance_uid', study='study_uid')}, study_uid,
                   arg_min(bytes, received_at)
            FROM receipts GROUP BY sop_instance_uid, study_uid""",
        f"""INSERT INTO confirmed_instances
            SELECT DISTINCT {key.format(sop='sop_instance_uid', study='study_uid')}, study_uid
            FROM confirmations""",
        _FILL_STATE)


_FILL_STATE = """INSERT INTO study_state
       SELECT study_uid, sum(received), sum(bytes), sum(confirmed) FROM (
           SELECT study_uid, count(*) AS received, sum(bytes) AS bytes, 0 AS confirmed
           FROM received_instances GROUP BY study_uid
           UNION ALL
           SELECT study_uid, 0, 0, count(*) FROM confirmed_instances GROUP BY study_uid)
       GROUP BY study_uid"""
FILL_7 = _fill(INSTANCE_KEY_7)  # the migration that added the tables (version 7)
FILL = _fill(INSTANCE_KEY)  # the current keys
# Version 9: the tables emptied and filled again with the current keys.
REFILL = ("DELETE FROM received_instances", "DELETE FROM confirmed_instances",
          "DELETE FROM study_state", *FILL)

# Keys looked up travel as decimal text: a list of Python ints this large binds as DOUBLE.
_KNOWN = ("SELECT instance_key::VARCHAR FROM {table}"
          " WHERE instance_key = ANY(?::VARCHAR[]::UHUGEINT[])")
_LOOKUP = 32  # keys per look-up: DuckDB uses the index for a short list, scans for a long one
# Deltas of a few studies: each list (<= _LOOKUP studies) reaches the rows by the index.
_EXISTING = "SELECT study_uid FROM study_state WHERE study_uid = ANY(?::VARCHAR[])"
_DELTAS = ("SELECT unnest(?::VARCHAR[]) AS study_uid, unnest(?::BIGINT[]) AS received,"
           " unnest(?::BIGINT[]) AS received_bytes, unnest(?::BIGINT[]) AS confirmed")
_ADD = ("UPDATE study_state SET received = study_state.received + d.received,"
        " received_bytes = study_state.received_bytes + d.received_bytes,"
        " confirmed = study_state.confirmed + d.confirmed"
        f" FROM ({_DELTAS}) d WHERE study_state.study_uid = d.study_uid"
        " AND study_state.study_uid = ANY(?::VARCHAR[])")
_NEW = f"INSERT INTO study_state {_DELTAS}"

Delta = list[int]  # received, received_bytes, confirmed


def count_instances(conn: Conn, facts: Sequence[Fact], look_up: bool) -> None:
    """Count the batch's instances received and confirmed for the first time in their
    study's state; `look_up` their keys first (else any known one fails the batch)."""
    received = sorted((f for f in facts if isinstance(f, InstanceReceived)),
                      key=lambda f: f.at)
    count_received(conn, [(f.sop_instance_uid, f.study_uid, f.nbytes) for f in received],
                   look_up)
    count_confirmed(conn, [(uid, f.study_uid) for f in facts
                           if isinstance(f, VerificationRecorded) for uid in f.confirmed_uids],
                    look_up)


def count_received(conn: Conn, instances: Sequence[tuple[str, str, int]],
                   look_up: bool) -> None:
    """Count the instances (SOP UID, study UID, bytes) received for the first time."""
    first = list({(sop, study): (sop, study, nbytes)
                  for sop, study, nbytes in reversed(instances)}.values())
    new = _insert_new(conn, "received_instances", first, look_up)
    deltas: dict[str, Delta] = defaultdict(lambda: [0, 0, 0])
    for _, study, nbytes in new:
        deltas[str(study)][0] += 1
        deltas[str(study)][1] += int(str(nbytes))
    _add(conn, deltas)


def count_confirmed(conn: Conn, instances: Sequence[tuple[str, str]], look_up: bool) -> None:
    """Count the instances (SOP UID, study UID) confirmed for the first time."""
    new = _insert_new(conn, "confirmed_instances", sorted(set(instances)), look_up)
    deltas: dict[str, Delta] = defaultdict(lambda: [0, 0, 0])
    for _, study, *_ in new:
        deltas[str(study)][2] += 1
    _add(conn, deltas)


def _insert_new(conn: Conn, table: str, rows: Sequence[Row], look_up: bool) -> list[Row]:
    """Insert the rows (SOP UID, study UID, then the table's other columns) whose instance
    `table` does not hold yet, all of them unless `look_up` (then one it holds fails the
    batch); returns those inserted."""
    if look_up and rows:
        keys = [instance_key(str(row[0]), str(row[1])) for row in rows]
        known = _known(conn, table, keys)
        rows = [row for key, row in zip(keys, rows, strict=True) if key not in known]
    if rows:
        names = ("study_uid", "bytes")[:len(rows[0]) - 1]
        types = ("VARCHAR", "VARCHAR", "BIGINT")[:len(rows[0])]
        spread = ", ".join(f"unnest(?::{t}[]) AS c{i}" for i, t in enumerate(types))
        conn.execute(f"INSERT INTO {table} (instance_key, {', '.join(names)})"
                     f" SELECT {INSTANCE_KEY.format(sop='c0', study='c1')},"
                     f" {', '.join(f'c{i + 1}' for i in range(len(names)))}"
                     f" FROM (SELECT {spread})",
                     [[row[i] for row in rows] for i in range(len(rows[0]))])
    return list(rows)


def instance_key(sop_instance_uid: str, study_uid: str) -> str:
    """An instance's key in a study (`INSTANCE_KEY`), as decimal text."""
    return str((md5_number_lower(study_uid) << 64) | md5_number_lower(sop_instance_uid))


def _known(conn: Conn, table: str, keys: list[str]) -> set[str]:
    """Which of `keys` the table holds, looked up in its index a few at a time."""
    sql = _KNOWN.format(table=table)
    return {str(key) for start in range(0, len(keys), _LOOKUP)
            for (key,) in conn.execute(sql, [keys[start:start + _LOOKUP]]).fetchall()}


def _add(conn: Conn, deltas: dict[str, Delta]) -> None:
    """Add each study's delta to its row (made on its first fact), a few studies at a time."""
    studies = sorted(deltas)
    for start in range(0, len(studies), _LOOKUP):
        some = studies[start:start + _LOOKUP]
        existing = {str(study) for (study,) in conn.execute(_EXISTING, [some]).fetchall()}
        new = [study for study in some if study not in existing]
        old = [study for study in some if study in existing]
        if new:
            conn.execute(_NEW, _columns(new, deltas))
        if old:
            conn.execute(_ADD, [*_columns(old, deltas), old])


def _columns(studies: list[str], deltas: dict[str, Delta]) -> list[list[object]]:
    counts: list[list[object]] = [[deltas[study][i] for study in studies] for i in range(3)]
    return [list(studies), *counts]
