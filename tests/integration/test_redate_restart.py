"""Re-dating across runs: a restart within `redate.every_hours` re-dates nothing again; and
within a run, a study stored at the source after the census is found and re-dated too."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.execute.run import run_migration
from runner.morph.loaded import load_profile
from runner.sim.generate import StudySpec, make_study, to_bytes
from runner.sim.qrscp import Behaviour, MoveDirective, QRServer
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


class _Slow(Behaviour):
    """Each C-MOVE held a while: a run long enough for the arrivals' look."""

    def before_move(self, spec: StudySpec) -> MoveDirective:
        return MoveDirective(delay_seconds=0.2)


def test_a_study_stored_at_the_source_during_the_run_is_found_and_re_dated(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    # eight old studies to migrate (not recent: not re-dated) and one recent one
    specs = [StudySpec(f"arrivals-{i}", f"P{i}", "DOE^JOHN",
                       date.today() - timedelta(days=400 + i), "CT") for i in range(8)]
    specs.append(StudySpec("arrivals-recent", "P8", "DOE^JOHN",
                           date.today() - timedelta(days=2), "CT"))
    source = QRServer("SIMSRC", list(specs), {}, behaviour=_Slow()).start()
    listener_port = free_port()
    source.destinations["PACSMIG"] = ("127.0.0.1", listener_port)
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMSRC", "127.0.0.1", source.port))],
                            orthanc_factory(aet="NEWVNA").peer, listener_port,
                            throttles={"one": {"max_concurrent_retrieves": 1,
                                               "min_concurrent_retrieves": 1}},
                            redate={"recent_days": 14, "every_hours": 1 / 3600})
        loaded = load_profile(write_profile(tmp_path, data))
        plan = build_plan(loaded, None)
        late = StudySpec("arrivals-late", "P9", "DOE^JANE", date.today(), "CT")
        source.studies.append(late)  # type: ignore[attr-defined]
        source.by_uid[str(late.study_uid)] = late
        assert run_migration(loaded, plan, None, lambda _: None, False).complete
    finally:
        source.stop()
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        redated = conn.execute("SELECT count(*) FROM retrieves WHERE purpose = 'redate'"
                               f" AND study_uid = '{late.study_uid}'").fetchone()
        migrated = conn.execute("SELECT count(*) FROM retrieves WHERE purpose = 'migrate'"
                                f" AND study_uid = '{late.study_uid}'").fetchone()
    assert redated is not None and redated[0] >= 1  # kept local like the census's recent ones
    assert migrated == (0,)  # not this run's to migrate: `sync` takes it
