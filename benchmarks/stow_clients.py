"""STOW-RS clients side by side: pacsmig's (httpx, parts streamed from the files) against
dicomweb-client (requests; it takes pydicom data sets), into Orthanc's DICOMweb plugin.

    .venv/bin/python benchmarks/stow_clients.py [--instances 400 --batch 50 --rounds 3]

Writes N synthetic 512x512 16-bit CT instances as files, then in each round (order
alternated) stores them all into a fresh Orthanc with each client, `--batch` instances per
request, one connection. Prints the median seconds, MB/s and client CPU seconds and the
median ratio dicomweb_client_seconds / httpx_seconds (> 1.0: httpx faster); JSON to
benchmarks/results/stow_clients.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicomweb_client.api import DICOMwebClient  # noqa: E402
from pydicom import dcmread  # noqa: E402

from runner.destinations.stow import StowPart, Whole, stow  # noqa: E402
from runner.destinations.web import Credentials, WebService, open_client  # noqa: E402
from runner.sim.generate import ct_512, make_study, synthetic_archive, to_bytes  # noqa: E402
from tests.peers import OrthancProcess  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "stow_clients.json"


def read_chunks(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes, a chunk at a time (streamed as the request goes out)."""
    with path.open("rb") as source:
        while data := source.read(chunk):
            yield data


def write_files(folder: Path, instances: int) -> list[Path]:
    """N CT instances as Part-10 files (studies of 40)."""
    folder.mkdir(parents=True)
    specs = [ct_512(s) for s in synthetic_archive("stow", max(1, instances // 40),
                                                  date(2015, 1, 1), date(2020, 1, 1),
                                                  modalities=("CT",), instances_per_series=40)]
    paths = []
    for spec in specs:
        for ds in make_study(spec):
            path = folder / f"{len(paths):05d}.dcm"
            path.write_bytes(to_bytes(ds))
            paths.append(path)
    return paths[:instances]


def with_httpx(url: str, paths: list[Path], batch: int) -> None:
    """pacsmig's STOW-RS: parts streamed from the files."""
    service = WebService(url)
    with open_client(service, Credentials()) as client:
        for first in range(0, len(paths), batch):
            parts = [StowPart(p.name, p.stat().st_size, lambda p=p: read_chunks(p))
                     for p in paths[first:first + batch]]
            answer = stow(client, service, Credentials(), parts)
            assert answer.whole is Whole.ANSWERED, answer.detail


def with_dicomweb_client(url: str, paths: list[Path], batch: int) -> None:
    """dicomweb-client's store_instances (it encodes the data sets it is given)."""
    client = DICOMwebClient(url)
    for first in range(0, len(paths), batch):
        client.store_instances([dcmread(p) for p in paths[first:first + batch]])


def cpu() -> float:
    """This process's CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(work: Path, name: str, send: Callable[[str, list[Path], int], None],
            paths: list[Path], batch: int) -> tuple[float, float]:
    """Seconds and client CPU seconds to store `paths` into a fresh Orthanc."""
    orthanc = OrthancProcess(work / f"orthanc-{name}-{time.monotonic_ns()}",
                             plugins=("dicomweb",)).start()
    try:
        before, started = cpu(), time.monotonic()
        send(orthanc.dicomweb_url, paths, batch)
        seconds, used = time.monotonic() - started, cpu() - before
        stored = orthanc.rest_get("/statistics")["CountInstances"]
        assert stored == len(paths), (name, stored)
    finally:
        orthanc.kill()
    print(f"  {name:16s} {seconds:6.2f} s  client CPU {used:5.2f} s")
    return seconds, used


def main() -> None:
    """Parse, measure, print, save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=400)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clients = {"httpx": with_httpx, "dicomweb_client": with_dicomweb_client}
    with tempfile.TemporaryDirectory(prefix="stow-bench-") as tmp:
        work = Path(tmp)
        paths = write_files(work / "files", args.instances)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for number in range(args.rounds):
            print(f"-- round {number + 1}")
            order = list(clients) if number % 2 == 0 else list(reversed(clients))
            for name in order:
                runs[name].append(measure(work, name, clients[name], paths, args.batch))
    report: dict[str, Any] = {"instances": len(paths), "megabytes": round(megabytes, 1),
                              "batch": args.batch, "rounds": args.rounds}
    for name, values in runs.items():
        seconds = statistics.median(v[0] for v in values)
        report[name] = {"median_seconds": round(seconds, 3),
                        "median_mb_per_s": round(megabytes / seconds, 1),
                        "median_client_cpu_seconds": round(statistics.median(
                            v[1] for v in values), 3)}
        print(f"{name:16s} {seconds:6.2f} s {megabytes / seconds:6.1f} MB/s")
    ratio = statistics.median(d[0] / h[0] for d, h in zip(runs["dicomweb_client"],
                                                          runs["httpx"], strict=True))
    report["dicomweb_client_over_httpx"] = round(ratio, 3)
    print(f"dicomweb_client_seconds / httpx_seconds: {ratio:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
