"""The instance facts' one-column key (schema version 9): a fact written again is looked up in
the key's index, not merged into the whole table, and an older ledger is rebuilt with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from runner.ledger import (
    EventKind,
    InstanceQuarantined,
    InstanceReceived,
    Ledger,
    RetrievePurpose,
    StudiesPlanned,
    StudyPlanned,
    VerificationMethod,
)
from runner.ledger.events import FACT_TYPES
from runner.ledger.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from runner.ledger.tables import Table, hashed_key, hashed_key_of
from runner.profile.tiers import Location

T0 = datetime(2026, 3, 1, 8, 30, 0, 123456, tzinfo=UTC)
INSTANCE_TABLES = (("receipts", "received_at"), ("forwards", "attempted_at"),
                   ("confirmations", "confirmed_at"), ("quarantines", "quarantined_at"))


def receipt(sop: str, at: datetime, study: str = "S1",
            retrieve_id: str | None = None) -> InstanceReceived:
    return InstanceReceived(sop_instance_uid=sop, study_uid=study, series_uid=f"{study}.1",
                            sop_class_uid="1.2", transfer_syntax="1.2.840.10008.1.2.1",
                            retrieve_id=retrieve_id, nbytes=10, spool_name=f"f-{sop}", at=at)


def record_some_of_each(ledger: Ledger) -> None:
    """Rows in every table with a key: retrieves, instance facts, a check, events."""
    ledger.record(StudiesPlanned(studies=tuple(StudyPlanned(
        study_uid=f"S{i}", study_date=None, modality="CT", tier=Location.LOCAL, device="pacs",
        planned_instances=3, planned_mb=1.0, phase_index=0, order_index=i) for i in range(3))))
    for i in range(3):
        retrieve = ledger.record_retrieve_started(study_uid=f"S{i}", device="pacs",
                                                  purpose=RetrievePurpose.MIGRATE)
        for j in range(3):
            ledger.record(receipt(f"{i}.{j}", T0 + timedelta(seconds=j), f"S{i}", retrieve))
            ledger.record_forwarded(sop_instance_uid=f"{i}.{j}", study_uid=f"S{i}", ok=True,
                                    status=0)
        ledger.record_verification(study_uid=f"S{i}", method=VerificationMethod.IMAGE_FIND,
                                   expected=3, found=2, ok=False,
                                   confirmed_uids=[f"{i}.0", f"{i}.1"])
        ledger.record(InstanceQuarantined(sop_instance_uid=f"{i}.2", study_uid=f"S{i}",
                                          reason="bad header"))
        ledger.record_event(EventKind.STALL, device="pacs", study_uid=f"S{i}")
    ledger.flush()


def keyed_tables() -> list[Table]:
    """Every table a fact writes that looks its keys up instead of ON CONFLICT."""
    import runner.ledger.events as events
    tables = [value for value in vars(events).values() if isinstance(value, Table)]
    assert FACT_TYPES  # the facts are declared (their tables with them)
    return [table for table in tables if table.key is not None]


def test_a_ledger_made_at_version_8_gets_its_instance_facts_keyed_by_their_hash(
        tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    conn = duckdb.connect(str(path))
    assert migrate(conn, MIGRATIONS[:8]) == 8
    conn.execute("""INSERT INTO receipts (sop_instance_uid, study_uid, series_uid,
        sop_class_uid, transfer_syntax, received_at, bytes, spool_name)
        SELECT '1.' || i, 'S1', 'x', 'x', 'x', ?::TIMESTAMPTZ + to_seconds(i), 10, 'f'
        FROM range(5) t(i)""", [T0])
    conn.execute("INSERT INTO forwards (sop_instance_uid, attempted_at, study_uid, ok)"
                 " SELECT '1.' || i, ?::TIMESTAMPTZ + to_seconds(i), 'S1', true"
                 " FROM range(5) t(i)", [T0])
    conn.execute("INSERT INTO confirmations SELECT '1.' || i, ?::TIMESTAMPTZ, 'S1', 'count'"
                 " FROM range(3) t(i)", [T0])
    conn.execute("INSERT INTO quarantines SELECT '1.4', ?::TIMESTAMPTZ, 'S1', 'bad'", [T0])
    before = {table: conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
              for table, _ in INSTANCE_TABLES}
    conn.close()
    with Ledger.open(path) as ledger:
        assert ledger.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        for table, at in INSTANCE_TABLES:
            rows = ledger.query(f"SELECT * EXCLUDE (fact_key) FROM {table} ORDER BY ALL")
            assert rows == before[table], table
            keys = ledger.query(f"SELECT sop_instance_uid, {at}, fact_key::VARCHAR FROM {table}")
            assert all(key == hashed_key_of(sop, when) for sop, when, key in keys), table
        ledger.record(receipt("1.2", T0 + timedelta(seconds=2)))  # written before migrating
        ledger.flush()
        assert ledger.query("SELECT count(*) FROM receipts") == [(5,)]
        assert ledger.stats().upsert_batches == 1


def test_a_fact_written_again_is_looked_up_not_merged(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        facts = [receipt(f"1.{i}", T0 + timedelta(seconds=i)) for i in range(40)]
        for fact in facts:
            ledger.record(fact)
        ledger.flush()
        original = duckdb.DuckDBPyConnection.execute

        def spy(conn: duckdb.DuckDBPyConnection, sql: str, *args: object) -> object:
            statements.append(sql)
            return original(conn, sql, *args)

        monkeypatch.setattr(duckdb.DuckDBPyConnection, "execute", spy)
        for fact in [*facts, receipt("1.new", T0)]:  # replayed, and one new
            ledger.record(fact)
        ledger.flush()
        monkeypatch.undo()
        assert ledger.query("SELECT count(*) FROM receipts") == [(41,)]
    assert ledger.stats().upsert_batches == 1
    assert statements, "the writer's statements were not seen"
    assert not [sql for sql in statements if "ON CONFLICT" in sql]
    assert len([sql for sql in statements if "fact_key = ANY" in sql]) == 2  # 41 keys, by 32


@pytest.mark.parametrize("table", keyed_tables(), ids=lambda table: table.name)
def test_the_look_up_of_a_key_uses_its_index(tmp_path: Path, table: Table) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        record_some_of_each(ledger)
        assert ledger.query(f"SELECT count(*) FROM {table.name}")[0][0] > 0
        assert table.key is not None
        plan = ledger.query("EXPLAIN ANALYZE " + table.key.lookup_sql(table.name), [["1", "2"]])
    text = "\n".join(str(part) for row in plan for part in row)
    assert "Index Scan" in text, text


def test_the_key_computed_here_is_the_key_duckdb_writes() -> None:
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        written = conn.execute(f"SELECT {hashed_key('?', '?::TIMESTAMPTZ')}::VARCHAR",
                               [T0, "1.2.3"]).fetchone()  # the time comes first
    assert written == (hashed_key_of("1.2.3", T0),)
