"""Benchmark: the lossless transcoding path per instance, against the pass-through path.

Run: .venv/bin/python benchmarks/transcode_cost.py [--instances N] [--size 512]
Makes N CT instances (16-bit, SIZE x SIZE), compresses each with DCMTK (RLE, JPEG lossless,
JPEG-LS lossless) and forwards them with the runner's forwarder code (`forward_once`, one
StoreClient) to two Orthanc destinations in the same run: one accepting every syntax (the
instances go as received, undecoded), one accepting only uncompressed syntaxes (each
instance is refused in its syntax, decoded and sent as Explicit VR Little Endian). Prints
the median milliseconds per instance of each path, and their ratio. The machine is noisy:
compare ratios, not milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydicom import dcmread

from runner.dicom.peer import DicomSettings
from runner.dicom.store import StoreClient
from runner.execute.sending.prepare import Job, forward_once
from runner.execute.sending.seam import ForwardItem
from runner.morph import compile_rules
from runner.sim.generate import StudySpec, write_study
from tests.peers import OrthancProcess, peer_env

TOOLS = {"rle": ["dcmcrle"], "jpeg-lossless": ["dcmcjpeg"], "jpeg-ls": ["dcmcjpls"]}
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]


def _files(root: Path, count: int, size: int) -> dict[str, list[Path]]:
    spec = StudySpec("transcode-bench", "P", "A^B", date(2016, 1, 1), "CT",
                     instances_per_series=count, rows=size, cols=size, bits_allocated=16)
    plain = write_study(root / "plain", spec)
    out: dict[str, list[Path]] = {}
    for name, tool in TOOLS.items():
        (root / name).mkdir()
        out[name] = []
        for path in plain:
            target = root / name / path.name
            subprocess.run([*tool, str(path), str(target)], check=True, env=peer_env())
            out[name].append(target)
    return out


def _times(orthanc: OrthancProcess, paths: list[Path]) -> list[float]:
    job = Job(compile_rules([]))
    seconds = []
    with StoreClient(orthanc.peer, "BENCH", DicomSettings()) as client:
        for path in paths:
            meta = dcmread(path, stop_before_pixels=True).file_meta
            item = ForwardItem(path.name, "study", str(meta.MediaStorageSOPClassUID),
                               str(meta.TransferSyntaxUID), path, path.name)
            started = time.perf_counter()
            attempt = forward_once(client, job, item)
            seconds.append(time.perf_counter() - started)
            assert attempt.ok, attempt.detail
    return seconds[1:]  # the first opens the association


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="transcode-bench-") as tmp:
        root = Path(tmp)
        files = _files(root, args.instances, args.size)
        open_ = OrthancProcess(root / "open", aet="OPEN").start()
        strict = OrthancProcess(root / "strict", aet="STRICT", extra_config={
            "AcceptedTransferSyntaxes": UNCOMPRESSED}).start()
        try:
            for name, paths in files.items():
                through = statistics.median(_times(open_, paths)) * 1000
                transcoded = statistics.median(_times(strict, paths)) * 1000
                print(f"{name:14s} pass-through {through:7.2f} ms  transcoded "
                      f"{transcoded:7.2f} ms  ratio {transcoded / through:5.2f}")
        finally:
            open_.stop()
            strict.stop()


if __name__ == "__main__":
    main()
