"""Re-dating respects time across runs: a `--limit` pilot re-dates the recent studies, the
run after it within `redate.every_hours` re-dates none of them again (the ledger knows)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from runner.dicom.peer import Peer
from runner.execute.run import run_migration
from runner.plan.commands import build_plan
from runner.profile.load import load_profile
from runner.sim.destination import EmbeddedArchive
from runner.sim.generate import synthetic_archive
from runner.sim.qrscp import QRServer
from tests.peers import HOST, free_port
from tests.profiles import profile_data, write_profile

TODAY = date.today()
SPECS = synthetic_archive("redate-restart", 4, TODAY - timedelta(days=10), TODAY)


@pytest.fixture
def listener_port() -> int:
    return free_port()


@pytest.fixture
def source(listener_port: int) -> Iterator[QRServer]:
    server = QRServer("SIMSRC", SPECS, {"PACSMIG": (HOST, listener_port)}).start()
    yield server
    server.stop()


def redates(tmp_path: Path) -> int:
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM retrieves WHERE purpose = 'redate'"
                           " AND category = 'success'").fetchone()
    return int(row[0]) if row else 0


def test_a_run_after_a_pilot_within_every_hours_re_dates_nothing_again(
        tmp_path: Path, source: QRServer, listener_port: int) -> None:
    archive = EmbeddedArchive("DEST", tmp_path / "archive").start()
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMSRC", HOST, source.port))],
                            Peer("DEST", HOST, archive.port), listener_port,
                            redate={"recent_days": 30, "every_hours": 6})
        loaded = load_profile(write_profile(tmp_path, data))
        pilot = run_migration(loaded, build_plan(loaded, None), 1, lambda _: None, False)
        assert pilot.verified == 1, pilot.lines()
        first = redates(tmp_path)
        assert first == len(SPECS)  # every recent local study, once

        rest = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
        assert rest.complete, rest.lines()
    finally:
        archive.stop()
    assert redates(tmp_path) == first  # none was due again within six hours
