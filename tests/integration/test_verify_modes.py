"""Every verification mode catches a destination that does not hold what it acknowledged.

A real run (simulated source over DICOM, the runner, an archive over DICOM) against an
archive that answers every C-STORE with success but silently drops one instance: `instances`
(image-level C-FIND), `counts` (study-level count) and `commitment` (Storage Commitment) must
each leave that study unverified, and the others verified. A second archive holds everything
but its commitment report fails one instance: `commitment` must not take it as committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pytest
from pynetdicom.events import Event

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.execute.run import run_migration
from runner.morph.loaded import load_profile
from runner.sim.destination import EmbeddedArchive
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.qrscp import QRServer
from tests.peers import HOST, free_port
from tests.profiles import profile_data, write_profile

SPECS = synthetic_archive("verify-modes", 3, date(2015, 1, 1), date(2020, 1, 1),
                          instances_per_series=2)
VICTIM = SPECS[1]
DROPPED = str(VICTIM.sop_uids[0])


@dataclass
class DroppingArchive(EmbeddedArchive):
    """Answers success to every C-STORE, but never keeps the instances in `drop`."""

    drop: frozenset[str] = frozenset()

    def _on_store(self, event: Event) -> int:
        if str(event.dataset.SOPInstanceUID) in self.drop:
            return 0x0000
        return super()._on_store(event)


@dataclass
class FailingCommitmentArchive(EmbeddedArchive):
    """Keeps everything, but its commitment reports fail the instances in `fail`."""

    fail: frozenset[str] = field(default_factory=frozenset)

    def _committed(self, refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [r for r in super()._committed(refs) if r[1] not in self.fail]


@pytest.fixture
def listener_port() -> int:
    return free_port()


@pytest.fixture
def source(listener_port: int) -> Iterator[QRServer]:
    server = QRServer("SIMSRC", SPECS, {"PACSMIG": (HOST, listener_port)}).start()
    yield server
    server.stop()


def migrate(tmp_path: Path, source: QRServer, archive: EmbeddedArchive, listener_port: int,
            method: str) -> dict[str, str]:
    """Run the migration with `method`; the reconciliation status of every study."""
    archive.peers = {"PACSMIG": Peer("PACSMIG", HOST, listener_port)}
    archive.start()
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMSRC", HOST, source.port))],
                            Peer("DEST", HOST, archive.port), listener_port,
                            destination={"verify": method},
                            retries={"retrieve_attempts": 1, "verify_attempts": 1,
                                     "backoff_seconds": 0})
        loaded = load_profile(write_profile(tmp_path, data))
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    finally:
        archive.stop()
    assert not summary.complete, summary.lines()
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        return dict(conn.execute("SELECT study_uid, status FROM reconciliation").fetchall())


def _expected(victim: StudySpec) -> dict[str, str]:
    return {s.study_uid: "verified" for s in SPECS if s.study_uid != victim.study_uid}


@pytest.mark.parametrize("method", ["instances", "counts", "commitment"])
def test_a_dropped_instance_leaves_its_study_unverified_in_every_mode(
        tmp_path: Path, source: QRServer, listener_port: int, method: str) -> None:
    archive = DroppingArchive("DEST", tmp_path / "archive", drop=frozenset({DROPPED}))
    statuses = migrate(tmp_path, source, archive, listener_port, method)
    assert statuses.pop(VICTIM.study_uid) in ("incomplete", "failed")
    assert statuses == _expected(VICTIM)
    assert DROPPED not in archive.held


def test_a_failed_commitment_is_not_taken_for_committed(
        tmp_path: Path, source: QRServer, listener_port: int) -> None:
    archive = FailingCommitmentArchive("DEST", tmp_path / "archive",
                                       fail=frozenset({DROPPED}))
    statuses = migrate(tmp_path, source, archive, listener_port, "commitment")
    assert statuses.pop(VICTIM.study_uid) in ("incomplete", "failed")
    assert statuses == _expected(VICTIM)
    assert DROPPED in archive.held  # it holds the instance: only its report says no


@dataclass
class DropOnceArchive(EmbeddedArchive):
    """Acknowledges and drops the instances in `drop` the first time they are sent."""

    drop: set[str] = field(default_factory=set)

    def _on_store(self, event: Event) -> int:
        sop = str(event.dataset.SOPInstanceUID)
        if sop in self.drop:
            self.drop.discard(sop)
            return 0x0000
        return super()._on_store(event)


def test_an_instance_lost_at_the_destination_is_repaired_alone_by_image_level_move(
        tmp_path: Path, source: QRServer, listener_port: int) -> None:
    archive = DropOnceArchive("DEST", tmp_path / "archive", drop={DROPPED})
    archive.peers = {"PACSMIG": Peer("PACSMIG", HOST, listener_port)}
    archive.start()
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMSRC", HOST, source.port))],
                            Peer("DEST", HOST, archive.port), listener_port,
                            retries={"backoff_seconds": 0})
        loaded = load_profile(write_profile(tmp_path, data))
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    finally:
        archive.stop()
    assert summary.complete, summary.lines()
    assert DROPPED in archive.held
    moves = [(r.level, r.study_uid) for r in source.asked("C-MOVE")]
    assert moves.count(("IMAGE", VICTIM.study_uid)) == 1  # the repair: one instance
    assert moves.count(("STUDY", VICTIM.study_uid)) == 1  # the study, once
