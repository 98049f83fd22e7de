"""`kill -9` in the middle of a run, then run again: nothing lost, nothing sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.qrscp import Behaviour, MoveDirective, QRServer
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
ROOT = Path(__file__).parents[2]


class Unhurried(Behaviour):
    def before_move(self, spec: StudySpec) -> MoveDirective:
        return MoveDirective(delay_seconds=0.2)


@pytest.fixture
def specs() -> list[StudySpec]:
    return synthetic_archive("kill", 12, date(2014, 1, 1), date(2022, 1, 1), series_count=2,
                             instances_per_series=4)


@pytest.fixture
def listener_port() -> int:
    return free_port()


@pytest.fixture
def source(specs: list[StudySpec], listener_port: int) -> Iterator[QRServer]:
    server = QRServer("SIMSRC", specs, {"PACSMIG": ("127.0.0.1", listener_port)},
                      behaviour=Unhurried()).start()
    yield server
    server.stop()


def start_run(profile: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner", "run", str(profile)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(condition: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.parametrize("kill_after", [1, 40], ids=["first-instances", "mid-run"])
def test_run_killed_with_sigkill_resumes_without_loss_or_double_sends(
        tmp_path: Path, source: QRServer, specs: list[StudySpec], listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess], kill_after: int) -> None:
    destination = orthanc_factory(aet="DEST")
    data = profile_data(tmp_path, [("sim", Peer("SIMSRC", "127.0.0.1", source.port))],
                        destination.peer, listener_port,
                        throttles={"open": {"max_concurrent_retrieves": 2,
                                            "min_concurrent_retrieves": 2}})
    profile = write_profile(tmp_path, data)
    first = start_run(profile)
    kill_when(lambda: len(destination.rest_get("/instances")) >= kill_after, first)
    assert first.returncode == -signal.SIGKILL

    second = subprocess.run([sys.executable, "-m", "runner", "run", str(profile)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    expected = sorted(u for s in specs for u in s.sop_uids)
    assert destination.instances() == expected
    ledger = tmp_path / "reports" / "ledger.duckdb"
    with duckdb.connect(str(ledger), read_only=True) as conn:
        statuses = conn.execute("SELECT DISTINCT status FROM reconciliation").fetchall()
        sent_twice = conn.execute(
            "SELECT sop_instance_uid FROM forwards WHERE ok AND reason IS DISTINCT FROM "
            "'already at the destination' GROUP BY 1 HAVING count(*) > 1").fetchall()
    assert statuses == [("verified",)]
    assert sent_twice == []
    spool = tmp_path / "spool"
    # nothing spooled is left; tmp/ keeps emptied files for the next run to overwrite
    assert [p for p in spool.iterdir() if p.is_file()] == []
    assert [p for p in spool.rglob("*") if p.is_file() and p.stat().st_size] == []


def test_ctrl_c_stops_cleanly_and_the_next_run_finishes(
        tmp_path: Path, source: QRServer, specs: list[StudySpec], listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    destination = orthanc_factory(aet="DEST")
    data = profile_data(tmp_path, [("sim", Peer("SIMSRC", "127.0.0.1", source.port))],
                        destination.peer, listener_port)
    profile = write_profile(tmp_path, data)
    first = start_run(profile)
    deadline = time.monotonic() + 60
    while len(destination.rest_get("/instances")) < 8:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, out + err
    assert "interrupted (Ctrl-C)" in out and "Traceback" not in err
    # what stays in tmp/ is emptied files kept for the next run to overwrite, no data
    assert all(p.stat().st_size == 0 for p in (tmp_path / "spool" / "tmp").iterdir())

    second = subprocess.run([sys.executable, "-m", "runner", "run", str(profile)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert destination.instances() == sorted(u for s in specs for u in s.sop_uids)
