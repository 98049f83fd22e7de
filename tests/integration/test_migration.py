"""Full migrations between real Orthanc processes: source PACS -> runner -> destination."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydicom.dataset import FileDataset

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, make_study, synthetic_archive, to_bytes
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.peers


@dataclass
class Site:
    source: OrthancProcess
    destination: Any  # an OrthancProcess, or a fake archive from tests.fakes
    profile: Path
    specs: list[StudySpec]
    reports: Path

    def pacsmig(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runner", *args, str(self.profile)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              check=False)

    def reconciliation(self) -> list[tuple[str, int | None, int, int, str]]:
        with duckdb.connect(str(self.reports / "ledger.duckdb"), read_only=True) as conn:
            return conn.execute(
                "SELECT study_uid, source_instances, received_instances, "
                "destination_instances, status FROM reconciliation ORDER BY study_uid"
            ).fetchall()


def make_site(tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
              specs: list[StudySpec], prepare: Callable[[FileDataset], None] | None = None,
              **sections: object) -> Site:
    listener_port = free_port()
    listener = Peer("PACSMIG", "127.0.0.1", listener_port)
    source = orthanc_factory(aet="OLDPACS", modalities={"pacsmig": listener})
    destination = orthanc_factory(aet="NEWVNA", modalities={"pacsmig": listener})
    for spec in specs:
        for ds in make_study(spec):
            if prepare is not None:
                prepare(ds)
            source.upload(to_bytes(ds))
    data = profile_data(tmp_path, [("old1", source.peer)], destination.peer, listener_port,
                        **sections)
    return Site(source, destination, write_profile(tmp_path, data), specs, tmp_path / "reports")


@pytest.fixture
def specs() -> list[StudySpec]:
    return synthetic_archive("migration", 8, date(2012, 1, 1), date(2024, 1, 1),
                             series_count=2, instances_per_series=3)


def test_full_migration_leaves_exactly_the_source_instances_verified_at_destination(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        specs: list[StudySpec]) -> None:
    site = make_site(tmp_path, orthanc_factory, specs)
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(site.destination.instances()) == sorted(site.source.instances())
    rows = site.reconciliation()
    assert len(rows) == len(specs)
    assert all(row[1:] == (6, 6, 6, "verified") for row in rows), rows
    assert "8 of 8 studies verified" in result.stdout
    assert not [p for p in (tmp_path / "spool").iterdir() if p.is_file()]
    status = site.pacsmig("status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"verified\s+local\s+8", status.stdout)
    assert re.search(r"old1\s+8\s+0\s+0\s+48", status.stdout)
    # the run kept the forecast it started from; status sets it against what the run did
    assert "Forecast against actual, last run (finished" in status.stdout
    hours = re.search(r"\n  hours\s+(<?[\d.]+ s)\s+(<?[\d.]+ s)\s+\S+", status.stdout)
    assert hours is not None, status.stdout  # seconds, not "0.00" hours
    assert re.search(r"lock-ups \(devices down\)\s+0\s+0\s+0 %", status.stdout)
    assert site.pacsmig("report").returncode == 0
    html = (site.reports / "signoff.html").read_text()
    section = html[html.index("Forecast against actual"):]
    assert "TB per week" in section and "recalls (nearline studies)" in section


def test_second_run_moves_nothing(tmp_path: Path,
                                  orthanc_factory: Callable[..., OrthancProcess],
                                  specs: list[StudySpec]) -> None:
    site = make_site(tmp_path, orthanc_factory, specs[:3])
    assert site.pacsmig("run").returncode == 0
    second = site.pacsmig("run")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Migrating 0 of the plan's 3 studies" in second.stdout
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM retrieves").fetchone() == (3,)


def test_limit_migrates_a_pilot_batch_in_plan_order(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        specs: list[StudySpec]) -> None:
    site = make_site(tmp_path, orthanc_factory, specs)
    result = site.pacsmig("run", "--limit", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    verified = {row[0] for row in site.reconciliation() if row[4] == "verified"}
    assert verified == {s.study_uid for s in specs[:2]}


def test_destination_down_at_start_exits_1_naming_it_and_marks_nothing(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        specs: list[StudySpec]) -> None:
    site = make_site(tmp_path, orthanc_factory, specs[:2])
    site.destination.kill()
    result = site.pacsmig("run")
    assert result.returncode == 1
    assert "destination Test destination (NEWVNA@127.0.0.1" in result.stderr
    assert not (site.reports / "ledger.duckdb").exists()


def test_verify_finds_an_instance_lost_at_the_destination_and_run_sends_it_again(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        specs: list[StudySpec]) -> None:
    import urllib.request

    site = make_site(tmp_path, orthanc_factory, specs[:2])
    assert site.pacsmig("run").returncode == 0
    lost = site.destination.rest_get("/instances")[0]
    url = f"http://127.0.0.1:{site.destination.http_port}/instances/{lost}"
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30).close()

    checked = site.pacsmig("verify")
    assert checked.returncode == 1
    assert "1 complete, 1 short" in checked.stdout
    assert sorted(row[4] for row in site.reconciliation()) == ["incomplete", "verified"]

    rerun = site.pacsmig("run")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Migrating 1 of the plan's 2 studies" in rerun.stdout
    assert sorted(site.destination.instances()) == sorted(site.source.instances())
    assert site.pacsmig("verify").returncode == 0


@pytest.mark.parametrize("method", ["counts", "commitment"])
def test_migration_verified_by_counts_or_storage_commitment(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        specs: list[StudySpec], method: str) -> None:
    site = make_site(tmp_path, orthanc_factory, specs[:3], destination={"verify": method})
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [row[1:] for row in site.reconciliation()] == [(6, 6, 6, "verified")] * 3
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        methods = conn.execute("SELECT DISTINCT method FROM verifications").fetchall()
    assert methods == [({"counts": "count", "commitment": "commitment"}[method],)]


def test_lost_ledger_is_rebuilt_from_the_destination_and_only_the_rest_is_sent(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        specs: list[StudySpec]) -> None:
    import urllib.request

    site = make_site(tmp_path, orthanc_factory, specs[:4])
    assert site.pacsmig("run").returncode == 0
    for leftover in site.reports.glob("ledger.duckdb*"):
        leftover.rename(leftover.with_name("damaged-" + leftover.name))
    gone = site.destination.rest_get("/instances")[0]
    url = f"http://127.0.0.1:{site.destination.http_port}/instances/{gone}"
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30).close()

    rebuilt = site.pacsmig("verify", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "3 studies complete (verified), 1 partly there, 0 absent" in rebuilt.stdout
    rerun = site.pacsmig("run")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Migrating 1 of the plan's 4 studies" in rerun.stdout
    assert sorted(site.destination.instances()) == sorted(site.source.instances())
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        sent = conn.execute("SELECT count(*) FROM forwards WHERE ok AND reason IS DISTINCT "
                            "FROM 'found at the destination when the ledger was rebuilt'"
                            ).fetchone()
    assert sent == (1,)  # only the lost instance was sent again
