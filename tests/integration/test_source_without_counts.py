"""A source that answers neither instance counts nor InstanceAvailability (DCMTK dcmqrscp)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import synthetic_archive, write_study
from tests.peers import DcmqrscpProcess, OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
ROOT = Path(__file__).parents[2]


def test_migration_from_dcmqrscp_counts_what_the_move_reports_and_verifies_all(
        tmp_path: Path, dcmqrscp_factory: Callable[..., DcmqrscpProcess],
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs = synthetic_archive("dcmqr", 4, date(2013, 1, 1), date(2019, 1, 1),
                              series_count=2, instances_per_series=2)
    listener_port = free_port()
    source = dcmqrscp_factory(aet="QRSCP",
                              move_destinations={"pacsmig": Peer("PACSMIG", "127.0.0.1",
                                                                 listener_port)})
    source.add_files(p for s in specs for p in write_study(tmp_path / "files", s))
    destination = orthanc_factory(aet="DEST")
    profile = write_profile(tmp_path, profile_data(
        tmp_path, [("qr", source.peer)], destination.peer, listener_port))

    planned = subprocess.run([sys.executable, "-m", "runner", "plan", str(profile)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=False)
    assert planned.returncode == 0, planned.stderr
    assert "InstanceAvailability" in planned.stdout  # the note says tiers were assumed

    result = subprocess.run([sys.executable, "-m", "runner", "run", str(profile)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert destination.instances() == sorted(u for s in specs for u in s.sop_uids)
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT source_instances, destination_instances, status "
                            "FROM reconciliation").fetchall()
    # no planned count: the source count is what the C-MOVE reported it sent
    assert rows == [(4, 4, "verified")] * 4
