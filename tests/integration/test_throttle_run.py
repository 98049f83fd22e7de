"""Throttles at work, measured from the ledger's timestamps (simulated source, real Orthanc)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.execute.run import run_migration
from runner.morph.loaded import load_profile
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.qrscp import Behaviour, MoveDirective, QRServer
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
MOVE_SECONDS = 0.4


class SlowMoves(Behaviour):
    def before_move(self, spec: StudySpec) -> MoveDirective:
        return MoveDirective(delay_seconds=MOVE_SECONDS)


@pytest.fixture
def listener_port() -> int:
    return free_port()


@pytest.fixture
def source(listener_port: int) -> Iterator[QRServer]:
    specs = synthetic_archive("throttle", 10, date(2015, 1, 1), date(2020, 1, 1),
                              instances_per_series=1)
    server = QRServer("SIMSRC", specs, {"PACSMIG": ("127.0.0.1", listener_port)},
                      behaviour=SlowMoves()).start()
    yield server
    server.stop()


def migrate(tmp_path: Path, source: QRServer, destination: OrthancProcess, listener_port: int,
            clock: Callable[[ZoneInfo], datetime] = datetime.now,
            **sections: Any) -> list[tuple[float, float]]:
    data = profile_data(tmp_path, [("sim", Peer("SIMSRC", "127.0.0.1", source.port))],
                        destination.peer, listener_port, **sections)
    loaded = load_profile(write_profile(tmp_path, data))
    summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False,
                            clock)
    assert summary.complete, summary.lines()
    return retrieve_spans(tmp_path / "reports" / "ledger.duckdb")


def retrieve_spans(ledger: Path) -> list[tuple[float, float]]:
    with duckdb.connect(str(ledger), read_only=True) as conn:
        rows = conn.execute("SELECT epoch(started_at), epoch(ended_at) FROM retrieves "
                            "ORDER BY started_at").fetchall()
    return [(float(a), float(b)) for a, b in rows]


def in_flight_at(spans: list[tuple[float, float]], moment: float) -> int:
    return sum(1 for start, end in spans if start <= moment < end)


def test_never_more_in_flight_than_allowed_and_delays_above_the_minimum(
        tmp_path: Path, source: QRServer, listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    throttles = {"open": {"max_concurrent_retrieves": 3, "min_concurrent_retrieves": 1,
                          "delay_seconds": "0.15"}}
    spans = migrate(tmp_path, source, orthanc_factory(aet="DEST"), listener_port,
                    throttles=throttles)
    assert len(spans) == 10
    peak = max(in_flight_at(spans, start) for start, _ in spans)
    assert peak == 3  # reached, never exceeded
    for (previous, _), (start, _) in itertools.pairwise(spans):
        if in_flight_at(spans, start - 1e-3) >= 1:  # above the minimum: delayed
            assert start - previous >= 0.15 - 0.01


def test_below_the_minimum_retrieves_start_at_once(
        tmp_path: Path, source: QRServer, listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    throttles = {"open": {"max_concurrent_retrieves": 4, "min_concurrent_retrieves": 4,
                          "delay_seconds": "60"}}
    spans = migrate(tmp_path, source, orthanc_factory(aet="DEST"), listener_port,
                    throttles=throttles)
    first_four = [start for start, _ in spans[:4]]
    assert max(first_four) - min(first_four) < 0.3  # no 60 s delay below the minimum


def test_schedule_switch_changes_the_throttle_in_force(
        tmp_path: Path, source: QRServer, listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    """Monday 08:00 to 08:01 allows one retrieve; then three. The clock runs 60x fast from
    its first reading (the run's start, after the census)."""
    started: list[float] = []
    monday_eight = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Europe/London"))

    def clock(zone: ZoneInfo) -> datetime:
        now = datetime.now().timestamp()
        if not started:
            started.append(now)
        return monday_eight + timedelta(seconds=(now - started[0]) * 60)

    throttles = {"one": {"max_concurrent_retrieves": 1, "min_concurrent_retrieves": 1},
                 "three": {"max_concurrent_retrieves": 3, "min_concurrent_retrieves": 3}}
    schedule = [{"days": ["mon"], "hours": "08:00-08:01", "throttle": "one"},
                {"throttle": "three"}]
    spans = migrate(tmp_path, source, orthanc_factory(aet="DEST"), listener_port, clock,
                    throttles=throttles, schedule=schedule)
    switch = started[0] + 1.0  # 60 fast seconds
    before = [s for s in spans if s[0] < switch - 0.05]
    after = [s for s in spans if s[0] > switch + 0.05]
    assert before and after
    assert max(in_flight_at(spans, start) for start, _ in before) == 1
    assert max(in_flight_at(spans, start) for start, _ in after) >= 2
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        changes = conn.execute("SELECT detail->>'to' FROM events WHERE kind = "
                               "'throttle_change' ORDER BY occurred_at").fetchall()
    assert [c[0] for c in changes] == ["one", "three"]
