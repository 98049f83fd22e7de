"""Re-dating across runs: a restart within `redate.every_hours` re-dates nothing again."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, make_study, to_bytes
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.peers


def _site(tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
          every_hours: float) -> Path:
    listener_port = free_port()
    listener = Peer("PACSMIG", "127.0.0.1", listener_port)
    source = orthanc_factory(aet="OLDPACS", modalities={"pacsmig": listener})
    destination = orthanc_factory(aet="NEWVNA")
    for index in range(3):
        spec = StudySpec(f"recent-{index}", f"P{index}", "DOE^JOHN",
                         date.today() - timedelta(days=index + 1), "CT")
        for ds in make_study(spec):
            source.upload(to_bytes(ds))
    data = profile_data(tmp_path, [("old1", source.peer)], destination.peer, listener_port,
                        redate={"recent_days": 14, "every_hours": every_hours})
    return write_profile(tmp_path, data)


def _run(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "runner", "run", *args, str(profile)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _redates(tmp_path: Path) -> int:
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM retrieves WHERE purpose = 'redate'").fetchone()
    assert row is not None
    return int(row[0])


def test_a_pilot_then_a_restart_within_every_hours_re_dates_each_recent_study_once(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    profile = _site(tmp_path, orthanc_factory, every_hours=6)
    _run(profile, "--limit", "1")
    first = _redates(tmp_path)
    assert first == 3  # the pilot re-dated the three recent studies
    _run(profile)
    _run(profile)
    assert _redates(tmp_path) == first  # the later runs: none is due yet


def test_a_run_after_every_hours_re_dates_again(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    profile = _site(tmp_path, orthanc_factory, every_hours=2 / 3600)  # two seconds
    _run(profile, "--limit", "1")
    first = _redates(tmp_path)
    assert first >= 3
    time.sleep(2.5)
    _run(profile)
    assert _redates(tmp_path) >= first + 3
