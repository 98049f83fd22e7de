"""Dead time kept short: a stalled retrieve is aborted and retried; a device that locks up
is marked down, its work goes to the other device, it is probed, alerted and brought back."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.execute.run import run_migration
from runner.morph.loaded import load_profile
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.pacs import Lockup, SimArchive, SimDevice
from runner.sim.qrscp import Behaviour, MoveDirective, QRServer
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers


@pytest.fixture
def specs() -> list[StudySpec]:
    return synthetic_archive("health", 16, date(2012, 1, 1), date(2020, 1, 1))


@pytest.fixture
def listener_port() -> int:
    return free_port()


def events(tmp_path: Path) -> list[tuple[str, str | None]]:
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        return conn.execute("SELECT kind, device FROM events WHERE kind IN "
                            "('stall', 'device_down', 'device_up') ORDER BY occurred_at"
                            ).fetchall()


class StallsOnce(Behaviour):
    """Stalls the first retrieve of the first study (sends nothing, never answers)."""

    def __init__(self, victim: str) -> None:
        self.victim = victim
        self.stalled = False

    def before_move(self, spec: StudySpec) -> MoveDirective:
        if spec.study_uid == self.victim and not self.stalled:
            self.stalled = True
            return MoveDirective(stall=True)
        return MoveDirective()


def test_stalled_retrieve_is_aborted_by_the_watchdog_and_the_study_retried(
        tmp_path: Path, specs: list[StudySpec], listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    server = QRServer("SIMPACS", specs, {"PACSMIG": ("127.0.0.1", listener_port)},
                      behaviour=StallsOnce(specs[0].study_uid)).start()
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", server.port))],
                            orthanc_factory(aet="DEST").peer, listener_port,
                            source={"health": {"stall_timeout": 1.0}},
                            retries={"backoff_seconds": 0.1})
        loaded = load_profile(write_profile(tmp_path, data))
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    finally:
        server.stop()
    assert summary.complete, summary.lines()
    assert events(tmp_path) == [("stall", "sim")]
    moves = [r.study_uid for r in server.asked("C-MOVE")]
    assert moves.count(specs[0].study_uid) == 2


class Unhurried(SimDevice):
    def before_move(self, spec: StudySpec) -> MoveDirective:
        directive = super().before_move(spec)
        return MoveDirective(directive.delay_seconds + 0.6, directive.status, directive.stall)


@pytest.fixture
def two_devices(specs: list[StudySpec], listener_port: int) -> Iterator[tuple[QRServer, ...]]:
    archive = SimArchive(specs, capacity_mb=1e6, recent_days=0, today=date.today())
    fragile = SimDevice(archive, Lockup(max_concurrency=1, reboot_seconds=1.5))
    destinations = {"PACSMIG": ("127.0.0.1", listener_port)}
    servers = (QRServer("WFM1", specs, destinations, behaviour=fragile).start(),
               QRServer("WFM2", specs, destinations, behaviour=Unhurried(archive)).start())
    yield servers
    for server in servers:
        server.stop()


def test_locked_up_device_is_marked_down_its_work_moves_and_it_comes_back(
        tmp_path: Path, specs: list[StudySpec], listener_port: int,
        two_devices: tuple[QRServer, QRServer],
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    wfm1, wfm2 = two_devices
    alerts = tmp_path / "alerts.jsonl"
    script = ("import json, os; open(os.environ['ALERT_FILE'], 'a').write(json.dumps("
              "{k: v for k, v in os.environ.items() if k.startswith('PACSMIG_')}) + '\\n')")
    data = profile_data(
        tmp_path, [("wfm1", Peer("WFM1", "127.0.0.1", wfm1.port)),
                   ("wfm2", Peer("WFM2", "127.0.0.1", wfm2.port))],
        orthanc_factory(aet="DEST").peer, listener_port,
        throttles={"open": {"max_concurrent_retrieves": 2, "min_concurrent_retrieves": 2}},
        source={"health": {"down_after": 2, "probe_seconds": 0.5, "probe_max_seconds": 0.5}},
        retries={"backoff_seconds": 0.1, "retrieve_attempts": 5},
        alert={"command": [sys.executable, "-c", script]})
    os.environ["ALERT_FILE"] = str(alerts)
    try:
        loaded = load_profile(write_profile(tmp_path, data))
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    finally:
        del os.environ["ALERT_FILE"]
    assert summary.complete, summary.lines()
    fragile = wfm1.behaviour
    assert isinstance(fragile, SimDevice) and fragile.lockups >= 1
    kinds = events(tmp_path)
    assert kinds.index(("device_down", "wfm1")) < kinds.index(("device_up", "wfm1"))
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        served = dict(conn.execute("SELECT device, count(*) FILTER (WHERE category = 'success')"
                                   " FROM retrieves GROUP BY device").fetchall())
        after_up = conn.execute(
            "SELECT count(*) FROM retrieves WHERE device = 'wfm1' AND category = 'success' AND "
            "started_at > (SELECT min(occurred_at) FROM events WHERE kind = 'device_up')"
        ).fetchone()
    assert served["wfm2"] >= 5  # the other device took the work meanwhile
    assert after_up is not None and after_up[0] >= 1  # and the first one is back at work
    sent = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [(a["PACSMIG_EVENT"], a["PACSMIG_DEVICE"]) for a in sent][:2] == [
        ("device_down", "wfm1"), ("device_up", "wfm1")]  # pushed too hard, it may lock again


class SlowRecall(Behaviour):
    """Its nearline study takes `recall_seconds` before anything is sent (a recall)."""

    def __init__(self, recall_seconds: float) -> None:
        self.recall_seconds = recall_seconds

    def before_move(self, spec: StudySpec) -> MoveDirective:
        nearline = spec.instance_availability == "NEARLINE"
        return MoveDirective(delay_seconds=self.recall_seconds if nearline else 0.0)


def test_a_recall_longer_than_the_stall_timeout_is_waited_for_not_aborted(
        tmp_path: Path, specs: list[StudySpec], listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    few = [replace(specs[0], instance_availability="NEARLINE"), *specs[1:3]]
    server = QRServer("SIMPACS", few, {"PACSMIG": ("127.0.0.1", listener_port)},
                      behaviour=SlowRecall(1.5)).start()
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", server.port))],
                            orthanc_factory(aet="DEST").peer, listener_port,
                            source={"health": {"stall_timeout": 0.5, "down_after": 1,
                                               "probe_seconds": 0.1}},
                            tiering={"recall_timeout": 10},
                            retries={"retrieve_attempts": 1, "backoff_seconds": 0.1})
        loaded = load_profile(write_profile(tmp_path, data))
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    finally:
        server.stop()
    assert summary.complete, summary.lines()
    assert events(tmp_path) == []  # no stall, no device marked down
    assert [r.study_uid for r in server.asked("C-MOVE")].count(few[0].study_uid) == 1
