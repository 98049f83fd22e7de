"""Back-pressure: retrieves start only while the spool can hold what the retrieves in flight
will bring (projected fill), so a spool that fits the work refuses nothing; a spool smaller
than one study refuses stores with 0xA700, and those retrieves cost the study no attempt
and the device no failure. Nothing is lost, with the default retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.execute.run import run_migration
from runner.morph.loaded import load_profile
from runner.sim.generate import synthetic_archive
from runner.sim.qrscp import QRServer
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers


def test_full_spool_refuses_stores_with_out_of_resources_and_loses_nothing(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    # studies of 32 instances (about 170 kB) through a 30 kB spool: each takes several
    # retrieves, more than the default 3 attempts, none of which may count against it
    specs = synthetic_archive("spool", 3, date(2015, 1, 1), date(2020, 1, 1),
                              series_count=4, instances_per_series=8)
    listener_port = free_port()
    server = QRServer("SIMPACS", specs, {"PACSMIG": ("127.0.0.1", listener_port)}).start()
    destination = orthanc_factory(aet="DEST")
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", server.port))],
                            destination.peer, listener_port,
                            # 30 kB: about 4 instances, and no memory to hold any in
                            listener={"max_spool_gb": 30e3 / 1e9, "max_memory_mb": 0},
                            retries={"backoff_seconds": 0.2})  # the default 3 attempts
        loaded = load_profile(write_profile(tmp_path, data))
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    finally:
        server.stop()
    assert summary.complete, summary.lines()
    assert destination.instances() == sorted(u for s in specs for u in s.sop_uids)
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        refused = conn.execute("SELECT count(*) FROM events WHERE kind = 'store_refused' AND "
                               "CAST(detail->>'status' AS INTEGER) = 42752").fetchone()
        retrieves = conn.execute("SELECT count(*) FROM retrieves").fetchone()
    assert refused is not None and refused[0] > 0  # 0xA700 answered while full
    assert retrieves is not None and retrieves[0] > len(specs)  # studies retried, not lost
    assert _device_downs(tmp_path) == 0


def test_a_spool_that_fits_the_work_refuses_nothing_and_spends_no_attempt(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs = synthetic_archive("spool-fits", 8, date(2015, 1, 1), date(2020, 1, 1),
                              series_count=2, instances_per_series=4)
    listener_port = free_port()
    server = QRServer("SIMPACS", specs, {"PACSMIG": ("127.0.0.1", listener_port)}).start()
    destination = orthanc_factory(aet="DEST")
    try:
        # 120 kB: two to three studies of eight 5 kB instances, with four retrieves allowed
        data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", server.port))],
                            destination.peer, listener_port,
                            listener={"max_spool_gb": 120e3 / 1e9})
        loaded = load_profile(write_profile(tmp_path, data))
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    finally:
        server.stop()
    assert summary.complete, summary.lines()
    assert destination.instances() == sorted(u for s in specs for u in s.sop_uids)
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        refused = conn.execute("SELECT detail FROM events WHERE kind = 'store_refused'"
                               ).fetchall()
        retrieves = conn.execute("SELECT count(*) FROM retrieves WHERE purpose = 'migrate'"
                                 ).fetchone()
    assert refused == []  # no store refused
    assert retrieves == (len(specs),)  # one retrieve per study
    assert _device_downs(tmp_path) == 0


def _device_downs(tmp_path: Path) -> int:
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE kind = 'device_down'").fetchone()
    return int(row[0]) if row else 0


def test_a_migration_runs_beside_slow_clients_trickling_at_the_listener(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    """Ten clients each send an association request a byte every 0.25 s (the listener
    cuts each at the ACSE deadline and they come back) while the migration runs."""
    import socket
    import threading
    import time

    from runner.dicom.ul import pdu

    specs = synthetic_archive("beside-slow", 6, date(2015, 1, 1), date(2020, 1, 1),
                              series_count=2, instances_per_series=4)
    listener_port = free_port()
    server = QRServer("SIMPACS", specs, {"PACSMIG": ("127.0.0.1", listener_port)}).start()
    destination = orthanc_factory(aet="DEST")
    stop = threading.Event()
    contexts = (pdu.ProposedContext(1, "1.2.840.10008.1.1", ("1.2.840.10008.1.2",)),)
    request = pdu.encode_request(pdu.AssociateRequest("PACSMIG", "SIMPACS", contexts, 16384))

    def trickle() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", listener_port), timeout=1) as sock:
                    for byte in request:
                        if stop.wait(0.25):
                            return
                        sock.sendall(bytes([byte]))
            except OSError:
                stop.wait(0.2)  # not listening yet, or cut by the listener: again

    slow = [threading.Thread(target=trickle, daemon=True) for _ in range(10)]
    for thread in slow:
        thread.start()
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", server.port))],
                            destination.peer, listener_port,
                            dicom={"acse_timeout": 3, "dimse_timeout": 30,
                                   "network_timeout": 30})
        loaded = load_profile(write_profile(tmp_path, data))
        started = time.monotonic()
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
        seconds = time.monotonic() - started
    finally:
        stop.set()
        server.stop()
    assert summary.complete, summary.lines()
    assert destination.instances() == sorted(u for s in specs for u in s.sop_uids)
    assert seconds < 60
