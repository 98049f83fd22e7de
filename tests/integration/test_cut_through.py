"""Cut-through: instances go from the listener to the destination through memory while it
keeps up (or, slower, keeps giving space back within `listener.memory_wait_seconds`), and
through the spool when it does not, when a forward must be tried again, or when
`listener.max_memory_mb` is 0; the destination gets the same bytes either way, and a
run that died holding instances in memory loses nothing and sends nothing twice it knew of.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pynetdicom.events import Event

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.execute.run import RunSummary, run_migration
from runner.morph.loaded import load_profile
from runner.sim.destination import EmbeddedArchive
from runner.sim.generate import StudySpec, ct_512, synthetic_archive
from runner.sim.qrscp import QRServer
from tests.peers import free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
RULE = {"set": {"InstitutionName": "Cut Through Hospital"}}


@dataclass
class Archive(EmbeddedArchive):
    """The destination: counts every C-STORE, can be slow, can refuse each first store."""

    delay: float = 0.0
    refuse_first: bool = False
    stores: Counter[str] = field(default_factory=Counter)

    def _on_store(self, event: Event) -> int:
        sop = str(event.dataset.SOPInstanceUID)
        with self._lock:
            self.stores[sop] += 1
            first = self.stores[sop] == 1
        time.sleep(self.delay)
        if self.refuse_first and first:
            return 0xA700  # out of resources: try again later
        return super()._on_store(event)

    def sent_bytes(self) -> dict[str, bytes]:
        with self._lock:
            return {sop: held.path.read_bytes() for sop, held in self.held.items()}


@pytest.fixture(scope="module")
def specs() -> list[StudySpec]:
    # two CT studies of 6 instances of about 525 kB
    return [ct_512(s) for s in synthetic_archive("cut", 2, date(2016, 1, 1), date(2019, 1, 1),
                                                 modalities=("CT",), instances_per_series=6)]


@pytest.fixture
def source(specs: list[StudySpec], listener_port: int) -> Iterator[QRServer]:
    server = QRServer("SIMSRC", specs, {"PACSMIG": ("127.0.0.1", listener_port)}).start()
    yield server
    server.stop()


@pytest.fixture
def listener_port() -> int:
    return free_port()


def migrate(folder: Path, source: QRServer, archive: Archive, listener_port: int,
            **listener: Any) -> RunSummary:
    folder.mkdir(exist_ok=True)
    data = profile_data(folder, [("sim", Peer("SIMSRC", "127.0.0.1", source.port))],
                        Peer(archive.ae_title, "127.0.0.1", archive.port), listener_port,
                        listener=listener, morphing=[RULE],
                        retries={"backoff_seconds": 0.1})
    loaded = load_profile(write_profile(folder, data))
    return run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)


def receipts(folder: Path) -> list[tuple[str, str]]:
    """(SOP Instance UID, spool name) of every receipt, oldest first."""
    with duckdb.connect(str(folder / "reports" / "ledger.duckdb"), read_only=True) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT sop_instance_uid, spool_name FROM receipts ORDER BY received_at").fetchall()]


def started(tmp_path: Path, name: str, **options: Any) -> Archive:
    return Archive("DEST", tmp_path / name, **options).start()  # type: ignore[return-value]


def all_sops(specs: list[StudySpec]) -> set[str]:
    return {str(u) for s in specs for u in s.sop_uids}


def test_through_memory_and_through_the_spool_the_destination_gets_the_same_bytes(
        tmp_path: Path, source: QRServer, specs: list[StudySpec], listener_port: int) -> None:
    through_memory, through_spool = started(tmp_path, "a"), started(tmp_path, "b")
    try:
        assert migrate(tmp_path / "memory", source, through_memory, listener_port).complete
        assert migrate(tmp_path / "spool", source, through_spool, listener_port,
                       max_memory_mb=0).complete
        got_memory, got_spool = through_memory.sent_bytes(), through_spool.sent_bytes()
    finally:
        through_memory.stop()
        through_spool.stop()
    assert set(got_memory) == all_sops(specs)
    assert got_memory == got_spool
    assert b"Cut Through Hospital" in next(iter(got_memory.values()))  # morphed on the way
    assert {name for _, name in receipts(tmp_path / "memory")} == {"memory"}
    assert "memory" not in {name for _, name in receipts(tmp_path / "spool")}


def through_a_slow_destination(tmp_path: Path, source: QRServer, specs: list[StudySpec],
                               listener_port: int, delay: float, wait: float) -> list[str]:
    """Migrate into a destination taking `delay` s a store, with 3 MB of memory (five
    instances at most; the source sends twelve far faster than they go on) and a wait for
    room of `wait` s: every instance arrived once; the spool names of the receipts."""
    slow = started(tmp_path, "slow", delay=delay)
    try:
        summary = migrate(tmp_path / "site", source, slow, listener_port, max_memory_mb=3,
                          memory_wait_seconds=wait)
    finally:
        slow.stop()
    assert summary.complete, summary.lines()
    assert set(slow.held) == all_sops(specs) and max(slow.stores.values()) == 1
    return [name for _, name in receipts(tmp_path / "site")]


def test_a_destination_slower_than_the_source_slows_it_through_the_memory_not_the_spool(
        tmp_path: Path, source: QRServer, specs: list[StudySpec], listener_port: int) -> None:
    # a store gives space back every 0.1 s or so, well within the wait (2 s here: room for
    # a loaded machine; the default's value is tests/unit/test_defaults.py's)
    names = through_a_slow_destination(tmp_path, source, specs, listener_port, 0.15, 2.0)
    assert set(names) == {"memory"}


def test_a_destination_slower_than_the_wait_fills_the_memory_then_the_spool_and_recovers(
        tmp_path: Path, source: QRServer, specs: list[StudySpec], listener_port: int) -> None:
    # no store gives space back within 0.05 s
    names = through_a_slow_destination(tmp_path, source, specs, listener_port, 0.4, 0.05)
    assert "memory" in names  # cut through while there was room
    assert any(name.endswith(".dcm") for name in names)  # spooled once the memory was full
    assert [p for p in (tmp_path / "site" / "spool").iterdir() if p.is_file()] == []


def test_an_instance_to_be_sent_again_waits_in_the_spool_not_in_memory(
        tmp_path: Path, source: QRServer, specs: list[StudySpec], listener_port: int) -> None:
    refusing = started(tmp_path, "refusing", refuse_first=True)
    try:
        summary = migrate(tmp_path / "site", source, refusing, listener_port)
    finally:
        refusing.stop()
    assert summary.complete, summary.lines()
    assert set(refusing.held) == all_sops(specs)
    by_sop: dict[str, list[str]] = {}
    for sop, name in receipts(tmp_path / "site"):
        by_sop.setdefault(sop, []).append(name)
    # received into memory, then moved to the spool (a new receipt) before the retry
    assert all(names[0] == "memory" and names[-1].endswith(".dcm")
               for names in by_sop.values()), by_sop


def test_instances_held_in_memory_when_a_run_died_are_looked_up_not_sent_again(
        tmp_path: Path, source: QRServer, specs: list[StudySpec], listener_port: int) -> None:
    archive = started(tmp_path, "dest")
    try:
        assert migrate(tmp_path / "site", source, archive, listener_port).complete
        ledger = tmp_path / "site" / "reports" / "ledger.duckdb"
        with duckdb.connect(str(ledger)) as conn:  # as if the run died after its stores,
            conn.execute("DELETE FROM forwards")  # before the ledger held any forward
            conn.execute("DELETE FROM confirmations")
            conn.execute("DELETE FROM verifications")
            conn.execute("UPDATE studies SET status = 'active'")
            retrieves = conn.execute("SELECT count(*) FROM retrieves").fetchone()
        summary = migrate(tmp_path / "site", source, archive, listener_port)
        with duckdb.connect(str(ledger), read_only=True) as conn:
            after = conn.execute("SELECT count(*) FROM retrieves").fetchone()
    finally:
        archive.stop()
    assert summary.complete, summary.lines()
    assert max(archive.stores.values()) == 1  # found at the destination, not sent again
    assert after == retrieves  # nor retrieved again
