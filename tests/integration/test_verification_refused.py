"""A destination that refuses the verification query: a verification error, never "0 found"."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest
from pydicom.dataset import Dataset
from pynetdicom.events import Event

from runner.dicom.peer import Peer
from runner.sim.generate import make_study, synthetic_archive, to_bytes
from tests.fakes import FussyArchive
from tests.integration.test_migration import Site
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers


@dataclass
class NoImageQueries(FussyArchive):
    """Stores everything; aborts the association on an image-level C-FIND."""

    def _on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        if event.identifier.QueryRetrieveLevel == "IMAGE":
            event.assoc.abort()
            return
        yield from super()._on_find(event)


@pytest.fixture
def archive() -> Iterator[NoImageQueries]:
    started = NoImageQueries().start()
    yield started
    started.stop()


def test_a_refused_verification_is_a_failure_with_its_reason_in_run_status_and_ledger(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        archive: NoImageQueries) -> None:
    specs = synthetic_archive("refusedcheck", 2, date(2016, 1, 1), date(2018, 1, 1))
    listener_port = free_port()
    source = orthanc_factory(aet="OLDPACS",
                             modalities={"pacsmig": Peer("PACSMIG", "127.0.0.1", listener_port)})
    source.upload_all(to_bytes(ds) for s in specs for ds in make_study(s))
    data = profile_data(tmp_path, [("old1", source.peer)], archive.peer, listener_port,
                        retries={"verify_attempts": 2, "backoff_seconds": 0.1})
    site = Site(source, archive, write_profile(tmp_path, data), specs, tmp_path / "reports")

    result = site.pacsmig("run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(archive.stored) == sum(len(s.sop_uids) for s in specs)  # they are there
    assert "0 of 2 studies verified, 0 incomplete, 2 failed" in result.stdout
    assert "2 failed: verification error: the destination refused or did not answer" \
        in result.stdout
    assert "unknown, not 0" in result.stdout

    assert {row[4] for row in site.reconciliation()} == {"failed"}
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        reasons = {r[0] for r in conn.execute("SELECT reason FROM studies").fetchall()}
        found = conn.execute("SELECT count(*) FROM verifications").fetchone()
    assert len(reasons) == 1 and str(next(iter(reasons))).startswith("verification error")
    assert found == (0,)  # no check recorded as "0 found"

    status = site.pacsmig("status")
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if "verification error" in x)
    assert line.split()[:2] == ["failed", "2"], line
    assert "Throttle in force now" in status.stdout and ": open;" in status.stdout
    assert "planned MB   received MB" in status.stdout  # a small job: MB, not 0.00 GB
