"""Opening the ledger: schema versions and migrations, locked, corrupt and foreign files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from runner.errors import LedgerError
from runner.ledger import SCHEMA_VERSION, Ledger
from runner.ledger.schema import MIGRATIONS, Migration, current_version, migrate


def versions(path: Path) -> list[int]:
    conn = duckdb.connect(str(path))
    try:
        return [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")
                .fetchall()]
    finally:
        conn.close()


def test_a_new_ledger_is_created_with_its_folder_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "site" / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        views = ledger.query("SELECT view_name FROM duckdb_views() WHERE NOT internal"
                             " ORDER BY 1")
    assert versions(path) == [m.version for m in MIGRATIONS]
    assert versions(path)[-1] == SCHEMA_VERSION
    assert views == [("instances",), ("open_instances",), ("open_studies",),
                     ("reconciliation",), ("reconciliation_detail",)]


def test_opening_an_older_ledger_migrates_it_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    conn = duckdb.connect(str(path))
    assert migrate(conn, MIGRATIONS[:1]) == 1
    conn.execute("INSERT INTO studies (study_uid, modality, tier, planned_mb, phase_index,"
                 " order_index, planned_at, updated_at) VALUES"
                 " ('1.2.3', 'CT', 'nearline', 2.0, 0, 0, now(), now())")
    conn.close()
    with Ledger.open(path) as ledger:
        rows = ledger.query("SELECT study_uid, tier, status FROM reconciliation")
    assert rows == [("1.2.3", "nearline", "pending")]
    assert versions(path) == [m.version for m in MIGRATIONS]


def test_a_ledger_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        ledger.query("INSERT INTO schema_version VALUES (?, 'from the future', now())",
                     [SCHEMA_VERSION + 1])
    with pytest.raises(LedgerError, match="newer than this pacsmig") as info:
        Ledger.open(path)
    assert str(path) in str(info.value)


def test_a_failing_migration_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "ledger.duckdb"))
    migrate(conn)
    broken = Migration(SCHEMA_VERSION + 1, "broken",
                       ("CREATE TABLE extra (x INTEGER)", "SELECT * FROM no_such_table"))
    with pytest.raises(LedgerError, match="broken"):
        migrate(conn, (*MIGRATIONS, broken))
    assert current_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'extra'"
                        ).fetchall() == [(0,)]
    conn.close()


def test_a_duckdb_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE patients (name VARCHAR)")
    conn.close()
    with pytest.raises(LedgerError, match="not a ledger"):
        Ledger.open(path)


def test_a_corrupt_file_raises_ledger_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    path.write_bytes(b"this is not a database" * 500)
    with pytest.raises(LedgerError, match="corrupt") as info:
        Ledger.open(path)
    assert str(path) in str(info.value)


HOLDER = """
import sys, time
from pathlib import Path
from runner.ledger import Ledger
ledger = Ledger.open(Path(sys.argv[1]))
print("ready", flush=True)
time.sleep(120)
"""


def test_a_ledger_locked_by_another_process_says_another_pacsmig_may_run(
        tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(LedgerError, match="another pacsmig may be running") as info:
            Ledger.open(path)
        assert str(path) in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    with Ledger.open(path) as ledger:  # free again once the holder is gone
        assert ledger.query("SELECT 1") == [(1,)]


def test_a_second_open_in_the_same_process_is_refused_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    first = Ledger.open(path)
    with pytest.raises(LedgerError, match="already open"):
        Ledger.open(path)
    first.close()
    Ledger.open(path).close()
