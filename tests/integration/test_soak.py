"""Soak: many short associations, or a migration of hundreds of studies, leave the process
flat in memory and threads. 800 C-STOREs or more (PACSMIG_SOAK_ASSOCIATIONS), each on its
own association (4 senders at once), go to a running `Listener` that spools every instance;
then 200 tiny studies (PACSMIG_SOAK_STUDIES) are migrated from the simulated source. RSS and
thread counts are sampled along the way. Run with `pytest -s` to see the figures.
"""

from __future__ import annotations

import copy
import gc
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from runner.dicom.listener import (
    IncomingStore,
    Listener,
    ListenerCallbacks,
    ListenerConfig,
    Received,
    Verdict,
)
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.spool import Spool
from runner.execute.run import RunSummary, run_migration
from runner.plan.commands import build_plan
from runner.profile.load import load_profile
from runner.sim.ae import make_ae
from runner.sim.generate import SOP_CLASS_BY_MODALITY, StudySpec, make_study, synthetic_archive
from runner.sim.qrscp import QRServer
from tests.fakes import FussyArchive
from tests.peers import free_port
from tests.profiles import profile_data, write_profile

LISTENER_AE = "PACSMIG"
SOURCE_AE = "OLDPACS"
SETTINGS = DicomSettings(acse_timeout=10, dimse_timeout=20, network_timeout=20)
SENDERS = 4
# 800 by default: the listener needs 40-150 ms of CPU to negotiate each association (it
# offers every storage SOP class), so 2,000 take about 2 minutes on two cores; set
# PACSMIG_SOAK_ASSOCIATIONS=2000 (or more) for the long version.
TOTAL = int(os.environ.get("PACSMIG_SOAK_ASSOCIATIONS", "800"))
PER_SENDER = -(-TOTAL // SENDERS)
SAMPLE_EVERY = max(100, TOTAL // 10)
MAX_RSS_GROWTH_MB = 20.0
MIGRATION_STUDIES = int(os.environ.get("PACSMIG_SOAK_STUDIES", "200"))


def proc_status() -> tuple[float, int]:
    """This process's resident memory (MB) and OS thread count, from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in
                  Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


@dataclass
class Sample:
    done: int
    seconds: float
    rss_mb: float
    os_threads: int
    py_threads: int


@dataclass
class Spooler:
    """Stores every instance and removes its spool file at once (the forwarder's part)."""

    spool: Spool
    stored: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, _incoming: IncomingStore) -> Verdict:
        return Verdict.STORE

    def on_stored(self, received: Received) -> None:
        self.spool.remove(received.entry.name)
        with self.lock:
            self.stored += 1


@pytest.fixture
def spooler(tmp_path: Path) -> Spooler:
    return Spooler(Spool(tmp_path / "spool", 10**9))


@pytest.fixture
def listener(spooler: Spooler) -> Iterator[Listener]:
    config = ListenerConfig(LISTENER_AE, frozenset({SOURCE_AE}), settings=SETTINGS,
                            max_associations=SENDERS * 2)
    with Listener(config, spooler.spool, ListenerCallbacks(spooler.decide, spooler.on_stored)
                  ) as started:
        yield started


class Senders:
    """SENDERS threads, each sending its instances one association per C-STORE."""

    def __init__(self, port: int, spec: StudySpec) -> None:
        self.port = port
        template = make_study(spec)[0]
        self.templates = [copy.deepcopy(template) for _ in range(SENDERS + 1)]  # one each
        self.done = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def send_one(self, sender: int, index: int) -> None:
        ae = make_ae(SOURCE_AE, SETTINGS)
        ae.add_requested_context(SOP_CLASS_BY_MODALITY["CT"], [ExplicitVRLittleEndian])
        ds = self.templates[min(sender, SENDERS)]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = (
            f"1.2.826.0.1.3680043.8.498.9{sender}.{index + 1}")
        assoc = ae.associate("127.0.0.1", self.port, ae_title=LISTENER_AE)
        status = None
        if assoc.is_established:
            answer = assoc.send_c_store(ds)
            status = int(answer.Status) if "Status" in answer else None
            assoc.release()
        with self.lock:
            self.done += 1
            if status != 0x0000:
                self.failures.append(f"sender {sender} #{index}: {status}")

    def run(self, sender: int) -> None:
        for index in range(PER_SENDER):
            self.send_one(sender, index)


def test_thousands_of_associations_leave_memory_and_threads_flat(
        listener: Listener, spooler: Spooler, tmp_path: Path) -> None:
    spec = StudySpec("soak", "SOAK0001", "Soak^Sam", date(2020, 1, 1), "CT", rows=32, cols=32)
    senders = Senders(listener.port, spec)
    for warm in range(20):  # first-use imports and caches are not growth
        senders.send_one(SENDERS, warm)
    gc.collect()
    rss0, os0 = proc_status()
    py0 = threading.active_count()
    started = time.monotonic()
    threads = [threading.Thread(target=senders.run, args=(i,), name=f"sender-{i}")
               for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    samples: list[Sample] = []
    total = SENDERS * PER_SENDER
    next_mark = SAMPLE_EVERY
    deadline = started + 60 + total * 0.12
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.05)
        if senders.done >= next_mark:
            rss, os_threads = proc_status()
            samples.append(Sample(senders.done, time.monotonic() - started, rss, os_threads,
                                  threading.active_count()))
            next_mark += SAMPLE_EVERY
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    seconds = time.monotonic() - started
    settle = time.monotonic() + 5
    while threading.active_count() > py0 and time.monotonic() < settle:
        time.sleep(0.05)  # the last associations' threads end
    gc.collect()
    rss_end, os_end = proc_status()
    py_end = threading.active_count()

    print(f"\nsoak: {total} associations (1 C-STORE each, {SENDERS} senders) in {seconds:.1f} s"
          f" = {total / seconds:.0f}/s; baseline RSS {rss0:.1f} MB, threads {os0} OS / {py0} py")
    for s in samples:
        print(f"  after {s.done:5d}: {s.seconds:5.1f} s  RSS {s.rss_mb:6.1f} MB  "
              f"threads {s.os_threads:3d} OS / {s.py_threads:3d} py")
    print(f"  settled: RSS {rss_end:.1f} MB (+{rss_end - rss0:.1f}), threads {os_end} OS / "
          f"{py_end} py")

    assert not senders.failures, senders.failures[:5]
    assert senders.done == total + 20 and spooler.stored == total + 20
    assert not list((tmp_path / "spool").glob("*.dcm"))
    middle = samples[len(samples) // 2]
    assert rss_end - middle.rss_mb < MAX_RSS_GROWTH_MB, (middle, rss_end)
    assert max(s.rss_mb for s in samples[len(samples) // 2:]) - middle.rss_mb < MAX_RSS_GROWTH_MB
    assert py_end <= py0 and os_end <= os0, (py0, py_end, os0, os_end)
    # bounded by the associations at once (about 5 threads each, both sides), not by their count
    assert max(s.py_threads for s in samples) <= py0 + SENDERS * 6


def test_migration_of_hundreds_of_tiny_studies_leaves_memory_and_threads_flat(
        tmp_path: Path) -> None:
    specs = synthetic_archive("soak-run", MIGRATION_STUDIES, date(2010, 1, 1),
                              date(2020, 1, 1), modalities=("CR",), instances_per_series=1)
    listener_port = free_port()
    source = QRServer("SIMPACS", specs, {"PACSMIG": ("127.0.0.1", listener_port)}).start()
    destination = FussyArchive(ae_title="NEWVNA").start()
    data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", source.port))],
                        destination.peer, listener_port, dicom={"dimse_timeout": 30})
    loaded = load_profile(write_profile(tmp_path, data))
    plan = build_plan(loaded, None)
    gc.collect()
    rss0, os0 = proc_status()
    py0 = threading.active_count()
    outcome: list[RunSummary] = []
    run = threading.Thread(target=lambda: outcome.append(
        run_migration(loaded, plan, None, lambda _: None, False)), name="soak-run")
    started = time.monotonic()
    samples: list[Sample] = []
    try:
        run.start()
        while run.is_alive() and time.monotonic() < started + 90:
            run.join(timeout=1.0)
            rss, os_threads = proc_status()
            samples.append(Sample(len(destination.stored), time.monotonic() - started, rss,
                                  os_threads, threading.active_count()))
    finally:
        run.join(timeout=30)
        source.stop()
        destination.stop()
    seconds = time.monotonic() - started
    settle = time.monotonic() + 5
    while threading.active_count() > py0 and time.monotonic() < settle:
        time.sleep(0.05)
    gc.collect()
    rss_end, os_end = proc_status()
    py_end = threading.active_count()
    print(f"\nsoak run: {len(specs)} studies migrated in {seconds:.1f} s; baseline RSS "
          f"{rss0:.1f} MB, threads {os0} OS / {py0} py")
    for s in samples[:: max(1, len(samples) // 8)]:
        print(f"  {s.seconds:5.1f} s: {s.done:4d} stored  RSS {s.rss_mb:6.1f} MB  "
              f"threads {s.os_threads:3d} OS / {s.py_threads:3d} py")
    print(f"  settled: RSS {rss_end:.1f} MB (+{rss_end - rss0:.1f}), threads {os_end} OS / "
          f"{py_end} py")

    [summary] = outcome
    assert summary.complete and summary.verified == len(specs), summary.lines()
    assert max(destination.attempts.values()) == 1
    middle = samples[len(samples) // 2]
    assert max(s.rss_mb for s in samples[len(samples) // 2:]) - middle.rss_mb \
        < MAX_RSS_GROWTH_MB
    assert rss_end - middle.rss_mb < MAX_RSS_GROWTH_MB
    assert py_end <= py0 + 1 and os_end <= os0 + 1, (py0, py_end, os0, os_end)
