"""Measure C-STORE with and without TCP_NODELAY: 200 small instances to DCMTK storescp.

    .venv/bin/python benchmarks/tcp_nodelay.py [--count 200]

storescp runs with TCP_NODELAY=1 (DCMTK reads it from the environment), so only the
runner's side differs between the two runs: a plain pynetdicom AE against one from
runner.sim.ae.make_ae. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from pydicom.dataset import FileDataset
from pynetdicom import AE

from runner.dicom.peer import DicomSettings
from runner.sim.ae import make_ae
from runner.sim.generate import StudySpec, make_study

HOST = "127.0.0.1"
SETTINGS = DicomSettings()


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def storescp(port: int) -> Iterator[None]:
    """DCMTK storescp on `port`, receiving and discarding (--ignore)."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            ["storescp", "--ignore", "--aetitle", "STORESCP", "--output-directory", tmp,
             str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port)
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"storescp did not listen on {port}")


def plain_ae() -> AE:
    """A pynetdicom AE with the same settings as make_ae, but default (Nagle) sockets."""
    ae = AE(ae_title="PACSMIG")
    ae.acse_timeout = SETTINGS.acse_timeout
    ae.dimse_timeout = SETTINGS.dimse_timeout
    ae.network_timeout = SETTINGS.network_timeout
    ae.connection_timeout = SETTINGS.connection_timeout
    return ae


def send_all(ae: AE, port: int, instances: list[FileDataset]) -> float:
    """Seconds to send every instance over one association."""
    ae.add_requested_context(instances[0].SOPClassUID, instances[0].file_meta.TransferSyntaxUID)
    assoc = ae.associate(HOST, port, ae_title="STORESCP", max_pdu=SETTINGS.max_pdu)
    if not assoc.is_established:
        raise RuntimeError("storescp refused the association")
    started = time.perf_counter()
    for ds in instances:
        status = assoc.send_c_store(ds)
        if status.get("Status") != 0:
            raise RuntimeError(f"C-STORE failed: {status}")
    elapsed = time.perf_counter() - started
    assoc.release()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    count = parser.parse_args().count
    spec = StudySpec("tcp-nodelay-bench", "BENCH1", "Bench^Mark", date(2020, 1, 1), "CT",
                     instances_per_series=count)
    instances = make_study(spec)
    port = free_port()
    with storescp(port):
        off = send_all(plain_ae(), port, instances)
        on = send_all(make_ae("PACSMIG", SETTINGS), port, instances)
    print(f"{count} C-STOREs of {spec.rows}x{spec.cols} {spec.modality} to storescp")
    print(f"TCP_NODELAY off: {off:6.2f} s ({off / count * 1000:5.1f} ms per C-STORE)")
    print(f"TCP_NODELAY on : {on:6.2f} s ({on / count * 1000:5.1f} ms per C-STORE)")
    print(f"ratio off/on   : {off / on:6.1f}x")


if __name__ == "__main__":
    main()
