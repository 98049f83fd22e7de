"""A live dry run asks the source only C-FIND (and C-ECHO): no C-MOVE, nothing stored."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, make_study, synthetic_archive, to_bytes
from runner.sim.qrscp import QRServer
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

ROOT = Path(__file__).parents[2]


@pytest.fixture
def archive() -> list[StudySpec]:
    specs = synthetic_archive("dry-run", 12, date(2010, 1, 1), date(2025, 12, 31),
                              modalities=("CT", "CR", "MR"))
    return [s if i % 3 else _nearline(s) for i, s in enumerate(specs)]


def _nearline(spec: StudySpec) -> StudySpec:
    from dataclasses import replace
    return replace(spec, instance_availability="NEARLINE")


@pytest.fixture
def source(archive: list[StudySpec]) -> Iterator[QRServer]:
    server = QRServer("SIMSRC", archive, {"PACSMIG": ("127.0.0.1", free_port())}).start()
    yield server
    server.stop()


def run_plan(profile: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", "plan", str(profile), "--json",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.peers
def test_live_plan_issues_no_move_and_no_store(
        tmp_path: Path, source: QRServer, archive: list[StudySpec],
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    destination = orthanc_factory(aet="DEST")
    data = profile_data(tmp_path, [("sim", Peer("SIMSRC", "127.0.0.1", source.port))],
                        destination.peer, free_port(),
                        source={"inventory": {"window_days": 365}})
    result = run_plan(write_profile(tmp_path, data), tmp_path / "plan.json")
    assert result.returncode == 0, result.stderr
    kinds = {r.kind for r in source.requests}
    assert kinds <= {"C-ECHO", "C-FIND"} and "C-FIND" in kinds
    assert source.asked("C-MOVE") == []
    assert destination.instances() == []
    plan = json.loads((tmp_path / "plan.json").read_text())
    planned = [uid for phase in plan["phases"] for uid in phase["order"]]
    assert sorted(planned) == sorted(s.study_uid for s in archive)
    nearline = {s.study_uid for s in archive if s.instance_availability == "NEARLINE"}
    assert set(plan["phases"][1]["order"]) == nearline


@pytest.mark.peers
def test_live_plan_against_orthanc_takes_tiers_from_instance_availability(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs = synthetic_archive("orthanc-plan", 6, date(2015, 1, 1), date(2020, 1, 1))
    specs = [s if i % 2 else _nearline(s) for i, s in enumerate(specs)]
    pacs = orthanc_factory(aet="ORTHSRC")
    pacs.upload_all(to_bytes(ds) for s in specs for ds in make_study(s))
    data = profile_data(tmp_path, [("orthanc", pacs.peer)], Peer("DEST", "127.0.0.1", 1),
                        free_port())
    result = run_plan(write_profile(tmp_path, data), tmp_path / "plan.json")
    assert result.returncode == 0, result.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    local, nearline = plan["phases"][0], plan["phases"][1]
    assert (local["tier"], nearline["tier"]) == ("local", "nearline")
    assert local["order"] == [s.study_uid for s in specs if not s.instance_availability]
    assert nearline["order"] == [s.study_uid for s in specs if s.instance_availability]
    assert local["instances"] + nearline["instances"] == sum(s.instance_count for s in specs)
