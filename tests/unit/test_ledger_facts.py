"""The ledger's facts are declared once (runner.ledger.events): what each writes matches the
schema, they are written in the order declared, and a new fact needs its declaration only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

import runner.ledger
from runner.ledger import Ledger, events, fact, facts_plan, facts_priority
from runner.ledger.events import LedgerFact, declared, utc_now
from runner.ledger.schema import migrate
from runner.ledger.tables import Table, first, fold

# information_schema's names for the types the declarations cast to
_TYPE_NAMES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def _declared_tables() -> list[Table]:
    """Every table a declaration writes (the facts are declared in three modules)."""
    return [value for module in (facts_plan, events, facts_priority)
            for value in vars(module).values()
            if isinstance(value, Table)]


def test_every_table_a_fact_writes_has_those_columns_and_types_in_the_schema() -> None:
    conn = duckdb.connect()
    migrate(conn)
    tables = _declared_tables()
    for table in tables:
        schema = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = ?", [table.name]).fetchall())
        for column, sql_type in table.columns:
            assert schema.get(column) == _TYPE_NAMES.get(sql_type, sql_type), \
                f"{table.name}.{column}"
    conn.close()
    assert len(tables) == 13


def test_facts_are_written_in_the_order_they_are_declared() -> None:
    assert [kind.__name__ for kind in declared()] == [
        "RunStarted", "CensusTaken", "StudiesPlanned", "RetrieveStarted", "InstanceReceived",
        "InstanceForwarded", "InstanceQuarantined", "RetrieveFinished",
        "VerificationRecorded", "StudyStatusChanged", "EventRecorded", "RunEnded",
        "PriorityRequested", "PriorityResolved"]
    assert all(getattr(runner.ledger, kind.__name__) is kind for kind in declared())


def test_a_run_started_and_ended_in_one_batch_is_ended(tmp_path: Path) -> None:
    """The end is an UPDATE of the start's row: written after it, whatever the record order."""
    with Ledger.open(tmp_path / "ledger.duckdb", batch_ms=10_000) as ledger:
        ended = events.RunEnded(run_id="run-1")
        ledger.record(ended)
        ledger.record(events.RunStarted(run_id="run-1", profile_path="p", profile_sha256="s",
                                        runner_version="v", command="run"))
        rows = ledger.query("SELECT ended_at FROM runs WHERE run_id = 'run-1'")
    assert rows == [(ended.at,)]


_NOTES = Table("events", (("event_id", "VARCHAR"), ("occurred_at", "TIMESTAMPTZ"),
                          ("kind", "VARCHAR"), ("device", "VARCHAR")),
               "ON CONFLICT (event_id) DO NOTHING")


def test_a_new_fact_is_one_declaration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared here (into a copy of the registry), and nothing else: recorded, written,
    and idempotent like the others."""
    monkeypatch.setattr(fact, "_DECLARED", dict(fact._DECLARED))

    @dataclass(frozen=True, slots=True, kw_only=True)
    class DeviceNoted(LedgerFact):
        note_id: str
        device: str
        at: datetime = field(default_factory=utc_now)

        @classmethod
        def write(cls, conn: duckdb.DuckDBPyConnection, facts: Sequence[DeviceNoted],
                  upsert: bool) -> None:
            _NOTES.insert(conn, [(f.note_id, f.at, "device_noted", f.device)
                                 for f in fold(facts, lambda f: f.note_id, first)], upsert)

    assert declared()[-1] is DeviceNoted
    note = DeviceNoted(note_id="n-1", device="CT1")
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        ledger.record(note)
        ledger.record(note)
        ledger.flush()
        ledger.record(note)
        rows = ledger.query("SELECT event_id, kind, device, occurred_at FROM events")
    assert rows == [("n-1", "device_noted", "CT1", note.at)]
