"""The per-study state the writer keeps (runner.ledger.study_state): always what folding every
instance fact gives, however facts repeat, and filled from the facts of an older ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from runner.ledger import InstanceReceived, Ledger, StudyPlanned, VerificationMethod
from runner.ledger.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from runner.ledger.study_state import INSTANCE_KEY, instance_key
from runner.profile.tiers import Location

# What the state must equal: the fold over the facts, as the views computed it before.
FOLD = """
SELECT study_uid, count(DISTINCT sop_instance_uid) FILTER (WHERE kind = 'r'),
       coalesce(sum(bytes) FILTER (WHERE kind = 'r'), 0),
       count(DISTINCT sop_instance_uid) FILTER (WHERE kind = 'c')
FROM (SELECT study_uid, sop_instance_uid, 'r' AS kind,
             arg_min(bytes, received_at) AS bytes
      FROM receipts GROUP BY study_uid, sop_instance_uid
      UNION ALL
      SELECT DISTINCT study_uid, sop_instance_uid, 'c', 0 FROM confirmations)
GROUP BY study_uid ORDER BY study_uid
"""
STATE = ("SELECT study_uid, received, received_bytes, confirmed FROM study_state"
         " ORDER BY study_uid")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def receipt(sop: str, study: str, nbytes: int, minutes: int) -> InstanceReceived:
    return InstanceReceived(sop_instance_uid=sop, study_uid=study, series_uid=f"{study}.1",
                            sop_class_uid="1.2", transfer_syntax="1.2.840.10008.1.2.1",
                            retrieve_id=None, nbytes=nbytes, spool_name=f"f-{sop}",
                            at=T0 + timedelta(minutes=minutes))


def confirm(ledger: Ledger, study: str, uids: list[str]) -> None:
    ledger.record_verification(study_uid=study, method=VerificationMethod.IMAGE_FIND,
                               expected=len(uids), found=len(uids), ok=True,
                               confirmed_uids=uids)


def record_a_messy_history(ledger: Ledger) -> None:
    """New instances, the same receipt twice, a re-receipt, a second check, a count-only
    check, an instance received under two studies; some in one batch, some across batches."""
    first = [receipt(f"1.{i}", "S1", 100 + i, i) for i in range(5)]
    for fact in first:
        ledger.record(fact)
    ledger.record(first[0])  # the same fact again, in the same batch
    ledger.flush()
    for fact in first[:2]:
        ledger.record(fact)  # replayed in a later batch (the upsert path)
    ledger.record(receipt("1.1", "S1", 999, 60))  # received again, later
    ledger.record(receipt("2.0", "S2", 7, 1))
    ledger.record(receipt("1.0", "S2", 8, 2))  # the same SOP UID under another study
    ledger.flush()
    confirm(ledger, "S1", ["1.0", "1.1", "1.2"])
    ledger.flush()
    confirm(ledger, "S1", ["1.1", "1.2", "1.3"])  # checked again: 1.3 is new
    ledger.record_verification(study_uid="S2", method=VerificationMethod.COUNT, expected=2,
                               found=2, ok=True)
    confirm(ledger, "S3", ["3.0"])  # confirmed, never received (a rebuilt ledger)
    ledger.flush()


def test_the_state_equals_the_fold_of_the_facts_however_they_repeat(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        record_a_messy_history(ledger)
        state, fold = ledger.query(STATE), ledger.query(FOLD)
    assert state == fold
    assert state == [("S1", 5, 100 + 101 + 102 + 103 + 104, 4), ("S2", 2, 15, 0),
                     ("S3", 0, 0, 1)]


def test_new_instances_take_the_fast_path_and_repeats_the_upsert_path(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        for i in range(3):
            ledger.record(receipt(f"1.{i}", "S1", 1, i))
        ledger.flush()
        assert ledger.stats().upsert_batches == 0
        ledger.record(receipt("1.0", "S1", 1, 10))  # a new receipt of a known instance
        ledger.flush()
        assert ledger.stats().upsert_batches == 1
        assert ledger.query(STATE) == [("S1", 3, 3, 0)]


def test_a_ledger_made_at_version_6_gets_its_state_filled_from_its_facts(
        tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    conn = duckdb.connect(str(path))
    assert migrate(conn, MIGRATIONS[:6]) == 6
    conn.execute("""INSERT INTO studies (study_uid, modality, tier, planned_instances,
        planned_mb, phase_index, order_index, planned_at, updated_at)
        SELECT 'S' || i, 'CT', 'local', 4, 1.0, 0, i, now(), now() FROM range(2) t(i)""")
    conn.execute("""INSERT INTO receipts (sop_instance_uid, study_uid, series_uid,
        sop_class_uid, transfer_syntax, received_at, bytes, spool_name)
        SELECT i // 2 || '', 'S' || (i // 2 % 2), 'x', 'x', 'x',
               now() - to_seconds(i), 10 + i, 'f' FROM range(8) t(i)""")
    conn.execute("""INSERT INTO confirmations SELECT i || '', now() - to_seconds(j),
        'S' || (i % 2), 'count' FROM range(3) t(i), range(2) u(j)""")
    expected = conn.execute(FOLD).fetchall()
    conn.close()
    with Ledger.open(path) as ledger:
        assert ledger.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        assert ledger.query(STATE) == expected
        assert ledger.query("SELECT study_uid, received_instances, destination_instances"
                            " FROM reconciliation ORDER BY study_uid") == [
            ("S0", 2, 2), ("S1", 2, 1)]


def test_open_instances_hold_every_unfinished_instance_as_the_instances_view_does(
        tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        record_a_messy_history(ledger)
        for sop, study in (("1.4", "S1"), ("2.0", "S2"), ("1.0", "S2")):
            ledger.record_forwarded(sop_instance_uid=sop, study_uid=study, ok=True, status=0)
        ledger.record(receipt("4.0", "S4", 1, 1))
        ledger.record(receipt("5.0", "S5", 1, 1))
        ledger.record_forwarded(sop_instance_uid="5.0", study_uid="S5", ok=True, status=0)
        confirm(ledger, "S5", ["5.0"])  # verified one by one: no open work left
        ledger.flush()
        ledger.record_quarantined(sop_instance_uid="1.2", study_uid="S1", reason="refused")
        unfinished = ledger.query("SELECT * FROM instances WHERE state <> 'verified'"
                                  " ORDER BY ALL")
        opened = ledger.query("SELECT * FROM open_instances WHERE state <> 'verified'"
                              " ORDER BY ALL")
        studies = ledger.query("SELECT * FROM open_studies ORDER BY ALL")
    assert opened == unfinished
    assert {row[-1] for row in opened} == {"received", "forwarded", "quarantined"}
    assert ("S5",) not in studies


def test_the_key_looked_up_is_the_key_duckdb_writes() -> None:
    with duckdb.connect() as conn:
        written = conn.execute(f"SELECT {INSTANCE_KEY.format(sop='?', study='?')}::VARCHAR",
                               ["4.5.6", "1.2.3"]).fetchone()  # the study comes first
    assert written == (instance_key("1.2.3", "4.5.6"),)


def test_a_study_short_at_its_check_keeps_its_confirmed_instances_in_the_open_work(
        tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        ledger.upsert_studies([StudyPlanned(
            study_uid="S1", study_date=None, modality="CT", tier=Location.LOCAL, device="pacs",
            planned_instances=3, planned_mb=1.0, phase_index=0, order_index=0)])
        for i in range(2):
            ledger.record(receipt(f"1.{i}", "S1", 1, i))
            ledger.record_forwarded(sop_instance_uid=f"1.{i}", study_uid="S1", ok=True,
                                    status=0)
        confirm(ledger, "S1", ["1.0", "1.1"])  # all it received, one short of the source
        ledger.flush()
        status = ledger.query("SELECT status FROM reconciliation")
        left = ledger.query("SELECT sop_instance_uid, state FROM open_instances ORDER BY 1")
    assert status == [("incomplete",)]
    assert left == [("1.0", "verified"), ("1.1", "verified")]  # resume remembers them sent


def test_an_instance_set_aside_after_its_study_was_verified_is_open_work(
        tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        ledger.record(receipt("1.0", "S1", 1, 0))
        ledger.record_forwarded(sop_instance_uid="1.0", study_uid="S1", ok=True, status=0)
        confirm(ledger, "S1", ["1.0"])
        ledger.flush()
        ledger.record(receipt("1.0", "S1", 1, 10))  # received again, then set aside
        ledger.flush()
        ledger.record_quarantined(sop_instance_uid="1.0", study_uid="S1", reason="damaged")
        left = ledger.query("SELECT spool_name, state FROM open_instances")
    assert left == [("f-1.0", "quarantined")]  # its spool file is kept
