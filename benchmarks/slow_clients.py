"""Benchmark: a migration beside clients trickling association requests at the listener,
against the same migration alone, in the same run.

Run: .venv/bin/python benchmarks/slow_clients.py [--clients N] [--rounds R]
The simulated source (runner.sim.qrscp) moves 12 studies of 8 small instances into the
runner's listener, and an embedded archive takes them; N clients each send an A-ASSOCIATE-RQ
a byte every 0.25 s (the listener cuts each at the ACSE deadline, 3 s here, and they come
back). Printed: the median duration of each and their ratio (the machine is noisy).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.dicom.ul import pdu
from runner.execute.run import run_migration
from runner.morph.loaded import load_profile
from runner.sim.destination import EmbeddedArchive
from runner.sim.generate import synthetic_archive
from runner.sim.qrscp import QRServer
from tests.peers import free_port
from tests.profiles import profile_data, write_profile


def trickle(port: int, stop: threading.Event) -> None:
    """Send association requests a byte every 0.25 s until `stop`."""
    contexts = (pdu.ProposedContext(1, "1.2.840.10008.1.1", ("1.2.840.10008.1.2",)),)
    request = pdu.encode_request(pdu.AssociateRequest("PACSMIG", "SIMPACS", contexts, 16384))
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                for byte in request:
                    if stop.wait(0.25):
                        return
                    sock.sendall(bytes([byte]))
        except OSError:
            stop.wait(0.2)


def migrate(folder: Path, clients: int) -> float:
    """Seconds one migration takes with `clients` trickling beside it."""
    specs = synthetic_archive("slow-clients", 12, date(2015, 1, 1), date(2020, 1, 1),
                              series_count=2, instances_per_series=4)
    port = free_port()
    source = QRServer("SIMPACS", specs, {"PACSMIG": ("127.0.0.1", port)}).start()
    archive = EmbeddedArchive("DEST", folder / "archive").start()
    stop = threading.Event()
    threads = [threading.Thread(target=trickle, args=(port, stop), daemon=True)
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        data = profile_data(folder, [("sim", Peer("SIMPACS", "127.0.0.1", source.port))],
                            Peer("DEST", "127.0.0.1", archive.port), port,
                            dicom={"acse_timeout": 3, "dimse_timeout": 30,
                                   "network_timeout": 30})
        loaded = load_profile(write_profile(folder, data))
        started = time.monotonic()
        summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
        seconds = time.monotonic() - started
        assert summary.complete, summary.lines()
        return seconds
    finally:
        stop.set()
        source.stop()
        archive.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    alone, beside = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            alone.append(migrate(Path(folder), 0))
        with tempfile.TemporaryDirectory() as folder:
            beside.append(migrate(Path(folder), args.clients))
    a, b = statistics.median(alone), statistics.median(beside)
    print(f"12 studies, 96 instances; {args.rounds} rounds, medians")
    print(f"  alone                          {a:6.2f} s  ({' '.join(f'{x:.2f}' for x in alone)})")
    print(f"  beside {args.clients} trickling clients   {b:6.2f} s  "
          f"({' '.join(f'{x:.2f}' for x in beside)})")
    print(f"  beside / alone                 {b / a:6.2f}")


if __name__ == "__main__":
    main()
