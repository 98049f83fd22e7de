"""A source PACS that misbehaves during C-MOVE: the run survives every fault, never hangs,
and once the source behaves again every instance reaches the destination exactly once and
every study is verified. Real DICOM on loopback: a pynetdicom source (tests/misbehaving.py),
the runner in this process, a pynetdicom destination that counts each C-STORE (FussyArchive).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.execute.run import RunSummary, run_migration
from runner.morph.loaded import load_profile
from runner.sim.generate import StudySpec, synthetic_archive
from tests.fakes import FussyArchive
from tests.misbehaving import Fault, FaultKind, MisbehavingSource, Script, behave, first_attempt
from tests.peers import free_port
from tests.profiles import profile_data, write_profile

ROOT = Path(__file__).parents[2]
LISTENER_AE = "PACSMIG"
INSTANCES = 4  # per study: 2 series of 2


@pytest.fixture
def specs() -> list[StudySpec]:
    return synthetic_archive("faults", 3, date(2014, 1, 1), date(2019, 1, 1),
                             series_count=2, instances_per_series=2)


@pytest.fixture
def destination() -> Iterator[FussyArchive]:
    archive = FussyArchive(ae_title="NEWVNA").start()
    yield archive
    archive.stop()


class Site:
    """A misbehaving source, the destination and a profile between them."""

    def __init__(self, tmp_path: Path, specs: list[StudySpec], destination: FussyArchive,
                 script: Script, **sections: Any) -> None:
        self.tmp_path = tmp_path
        self.specs = specs
        self.destination = destination
        self.listener_port = free_port()
        self.source = MisbehavingSource("BADPACS", specs,
                                        {LISTENER_AE: ("127.0.0.1", self.listener_port)},
                                        script=script).start()
        defaults: dict[str, Any] = {
            "source": {"health": {"stall_timeout": 30, "down_after": 10, "probe_seconds": 0.2,
                                  "probe_max_seconds": 0.5}},
            "retries": {"backoff_seconds": 0.1, "retrieve_attempts": 3},
            "dicom": {"acse_timeout": 5, "dimse_timeout": 30, "network_timeout": 30},
        }
        for key, value in sections.items():
            defaults[key] = {**defaults.get(key, {}), **value}
        data = profile_data(tmp_path, [("bad1", Peer("BADPACS", "127.0.0.1", self.source.port))],
                            destination.peer, self.listener_port, **defaults)
        self.profile = write_profile(tmp_path, data)

    def run(self) -> tuple[RunSummary, float]:
        loaded = load_profile(self.profile)
        started = time.monotonic()
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
        return summary, time.monotonic() - started

    def ledger(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        path = self.tmp_path / "reports" / "ledger.duckdb"
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute(sql, list(params)).fetchall()

    def assert_all_verified_exactly_once(self, summary: RunSummary) -> None:
        assert summary.complete, summary.lines()
        assert summary.verified == len(self.specs)
        every = {str(u) for s in self.specs for u in s.sop_uids}
        assert set(self.destination.stored) == every
        twice = {sop: n for sop, n in self.destination.attempts.items() if n != 1}
        assert not twice, f"C-STOREd more than once: {twice}"
        statuses = self.ledger("SELECT DISTINCT status FROM studies")
        assert statuses == [("done",)]

    def stop(self) -> None:
        self.source.stop()


@pytest.fixture
def sites(tmp_path: Path, specs: list[StudySpec],
          destination: FussyArchive) -> Iterator[list[Site]]:
    made: list[Site] = []
    yield made
    for site in made:
        site.stop()


FAULTS = {
    "abort_after_some_instances": Fault(FaultKind.ABORT, after=2),
    "out_of_resources_a702": Fault(FaultKind.STATUS, status=0xA702),
    "sub_operations_failed_b000_with_failed_list": Fault(FaultKind.STATUS, after=2,
                                                        status=0xB000, failed_list=True),
    "unable_to_process_c000": Fault(FaultKind.STATUS, after=1, status=0xC000),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_fault_on_first_retrieve_is_retried_and_every_instance_arrives_exactly_once(
        tmp_path: Path, specs: list[StudySpec], destination: FussyArchive,
        sites: list[Site], fault: Fault) -> None:
    victim = str(specs[1].study_uid)
    site = Site(tmp_path, specs, destination, first_attempt({victim: fault}))
    sites.append(site)
    summary, seconds = site.run()
    site.assert_all_verified_exactly_once(summary)
    assert site.source.faults_done == [(victim, fault.kind)]
    assert site.source.attempts[victim] == 2
    assert site.source.sent[victim] == fault.after + INSTANCES  # the retry sent all again
    first = site.ledger("SELECT final_status, category, failed_uids FROM retrieves "
                        "WHERE study_uid = ? ORDER BY started_at LIMIT 1", victim)[0]
    if fault.kind is FaultKind.STATUS:
        assert first[0] == fault.status
    else:
        assert (first[0], first[1]) == (None, "aborted")
    if fault.failed_list:
        assert sorted(first[2]) == sorted(str(u) for u in specs[1].sop_uids[fault.after:])
    assert seconds < 30


def test_every_fault_at_once_on_different_studies_still_ends_verified(
        tmp_path: Path, destination: FussyArchive, sites: list[Site]) -> None:
    specs = synthetic_archive("faults-all", 6, date(2014, 1, 1), date(2019, 1, 1),
                              series_count=2, instances_per_series=2)
    faults = [*FAULTS.values(), Fault(FaultKind.SILENT, seconds=20)]
    victims = {str(spec.study_uid): fault for spec, fault in zip(specs, faults, strict=False)}
    site = Site(tmp_path, specs, destination, first_attempt(victims),
                dicom={"dimse_timeout": 2})
    sites.append(site)
    summary, seconds = site.run()
    site.assert_all_verified_exactly_once(summary)
    assert sorted(kind.value for _, kind in site.source.faults_done) == sorted(
        f.kind.value for f in faults)
    assert seconds < 40


def test_source_that_never_answers_is_ended_by_the_dimse_timeout(
        tmp_path: Path, specs: list[StudySpec], destination: FussyArchive,
        sites: list[Site]) -> None:
    victim = str(specs[0].study_uid)
    site = Site(tmp_path, specs, destination,
                first_attempt({victim: Fault(FaultKind.SILENT, seconds=25)}),
                dicom={"dimse_timeout": 1.5})
    sites.append(site)
    summary, seconds = site.run()
    site.assert_all_verified_exactly_once(summary)
    first = site.ledger("SELECT category, epoch(ended_at - started_at) FROM retrieves "
                        "WHERE study_uid = ? ORDER BY started_at LIMIT 1", victim)[0]
    assert first[0] == "timeout"
    assert first[1] < 10  # the DIMSE timeout, not the source's 25 s
    assert seconds < 20


def test_source_that_never_answers_is_aborted_by_the_stall_watchdog(
        tmp_path: Path, specs: list[StudySpec], destination: FussyArchive,
        sites: list[Site]) -> None:
    victim = str(specs[0].study_uid)
    site = Site(tmp_path, specs, destination,
                first_attempt({victim: Fault(FaultKind.SILENT, seconds=25)}),
                source={"health": {"stall_timeout": 1.5}})
    sites.append(site)
    summary, seconds = site.run()
    site.assert_all_verified_exactly_once(summary)
    stalls = site.ledger("SELECT study_uid FROM events WHERE kind = 'stall'")
    assert stalls == [(victim,)]
    assert seconds < 20


def test_endless_pending_responses_without_instances_are_a_stall(
        tmp_path: Path, specs: list[StudySpec], destination: FussyArchive,
        sites: list[Site]) -> None:
    victim = str(specs[0].study_uid)
    # Pendings every 0.2 s for at most 10 s (then the source gives up by itself, so that
    # the test ends even when the runner would wait for ever).
    site = Site(tmp_path, specs, destination,
                first_attempt({victim: Fault(FaultKind.ENDLESS_PENDING, seconds=10)}),
                source={"health": {"stall_timeout": 1.5}}, dicom={"dimse_timeout": 1.5})
    sites.append(site)
    summary, _seconds = site.run()
    site.assert_all_verified_exactly_once(summary)
    first = site.ledger("SELECT epoch(ended_at - started_at) FROM retrieves "
                        "WHERE study_uid = ? ORDER BY started_at LIMIT 1", victim)[0]
    stalls = site.ledger("SELECT study_uid FROM events WHERE kind = 'stall'")
    assert stalls == [(victim,)] and first[0] < 6, (stalls, first)


def test_unknown_move_destination_fails_fast_naming_device_and_listener_ae(
        tmp_path: Path, specs: list[StudySpec], destination: FussyArchive,
        sites: list[Site]) -> None:
    site = Site(tmp_path, specs, destination,
                lambda _spec, _attempt: Fault(FaultKind.UNKNOWN_DESTINATION))
    sites.append(site)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "runner", "run", str(site.profile)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    seconds = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "device bad1" in output and LISTENER_AE in output and "0xA801" in output, output
    assert 'File "' + str(ROOT / "runner") not in output, output  # no traceback of ours
    assert len(site.source.asked("C-MOVE")) <= 4  # at most one round of the throttle's 4
    assert not destination.attempts
    assert seconds < 30


def test_behaving_source_is_the_control_every_instance_once(
        tmp_path: Path, specs: list[StudySpec], destination: FussyArchive,
        sites: list[Site]) -> None:
    site = Site(tmp_path, specs, destination, behave)
    sites.append(site)
    summary, _ = site.run()
    site.assert_all_verified_exactly_once(summary)
    assert all(site.source.attempts[str(s.study_uid)] == 1 for s in specs)
