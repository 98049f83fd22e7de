"""Per-study state kept by the writer as facts arrive: which instances each study has received
and had confirmed (`received_instances`, `confirmed_instances`, one row per instance and
study, written once) and the study's counters (`study_state`), so that status, the
reconciliation and resume read one row per study instead of folding every instance fact.

Cost. A new instance is a plain keyed INSERT, like its fact; the counters of the few studies
a batch touches are updated one row at a time by primary key (a few hundred microseconds
each, whatever the table size). An instance received or confirmed again makes the plain
INSERT fail, and the writer writes the batch again on its upsert path, where `ON CONFLICT
DO NOTHING RETURNING` yields the instances really new: only they are counted, so writing a
fact twice (a replay, a second check) changes no counter.

`received_bytes` is the size of each instance's first receipt (a re-receipt of the same
instance is not counted again).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.ledger.tables import Table

if TYPE_CHECKING:
    from runner.ledger.tables import Conn

RECEIVED_INSTANCES = """
CREATE TABLE received_instances (
    sop_instance_uid  VARCHAR NOT NULL,
    study_uid         VARCHAR NOT NULL,
    bytes             BIGINT NOT NULL,
    PRIMARY KEY (sop_instance_uid, study_uid)
)"""

CONFIRMED_INSTANCES = """
CREATE TABLE confirmed_instances (
    sop_instance_uid  VARCHAR NOT NULL,
    study_uid         VARCHAR NOT NULL,
    PRIMARY KEY (sop_instance_uid, study_uid)
)"""

STUDY_STATE = """
CREATE TABLE study_state (
    study_uid       VARCHAR PRIMARY KEY,
    received        BIGINT NOT NULL,
    received_bytes  BIGINT NOT NULL,
    confirmed       BIGINT NOT NULL
)"""

# Filling the tables from the facts already in a ledger (the migration that adds them).
FILL = (
    """INSERT INTO received_instances
       SELECT sop_instance_uid, study_uid, arg_min(bytes, received_at)
       FROM receipts GROUP BY sop_instance_uid, study_uid""",
    """INSERT INTO confirmed_instances
       SELECT DISTINCT sop_instance_uid, study_uid FROM confirmations""",
    """INSERT INTO study_state
       SELECT study_uid, sum(received), sum(bytes), sum(confirmed) FROM (
           SELECT study_uid, count(*) AS received, sum(bytes) AS bytes, 0 AS confirmed
           FROM received_instances GROUP BY study_uid
           UNION ALL
           SELECT study_uid, 0, 0, count(*) FROM confirmed_instances GROUP BY study_uid)
       GROUP BY study_uid""",
)

_RECEIVED = Table("received_instances",
                  (("sop_instance_uid", "VARCHAR"), ("study_uid", "VARCHAR"),
                   ("bytes", "BIGINT")),
                  "ON CONFLICT (sop_instance_uid, study_uid) DO NOTHING")
_CONFIRMED = Table("confirmed_instances",
                   (("sop_instance_uid", "VARCHAR"), ("study_uid", "VARCHAR")),
                   "ON CONFLICT (sop_instance_uid, study_uid) DO NOTHING")

_ADD = ("UPDATE study_state SET received = received + ?, received_bytes = received_bytes + ?,"
        " confirmed = confirmed + ? WHERE study_uid = ? RETURNING study_uid")
_NEW = "INSERT INTO study_state VALUES (?, ?, ?, ?)"

Delta = list[int]  # received, received_bytes, confirmed


def count_received(conn: Conn, instances: Sequence[tuple[str, str, int]], upsert: bool) -> None:
    """Count the instances (SOP UID, study UID, bytes) received for the first time."""
    unique = list({(sop, study): (sop, study, nbytes)
                   for sop, study, nbytes in reversed(instances)}.values())
    new = _RECEIVED.insert(conn, unique, upsert, returning="study_uid, bytes")
    deltas: dict[str, Delta] = defaultdict(lambda: [0, 0, 0])
    for study, nbytes in new:
        deltas[str(study)][0] += 1
        deltas[str(study)][1] += int(nbytes)  # type: ignore[call-overload]
    _add(conn, deltas)


def count_confirmed(conn: Conn, instances: Sequence[tuple[str, str]], upsert: bool) -> None:
    """Count the instances (SOP UID, study UID) confirmed for the first time."""
    new = _CONFIRMED.insert(conn, sorted(set(instances)), upsert, returning="study_uid")
    deltas: dict[str, Delta] = defaultdict(lambda: [0, 0, 0])
    for (study,) in new:
        deltas[str(study)][2] += 1
    _add(conn, deltas)


def _add(conn: Conn, deltas: dict[str, Delta]) -> None:
    """Add each study's delta to its row (made on its first fact), by primary key."""
    for study, (received, nbytes, confirmed) in sorted(deltas.items()):
        if not conn.execute(_ADD, [received, nbytes, confirmed, study]).fetchall():
            conn.execute(_NEW, [study, received, nbytes, confirmed])
