"""Benchmark: the spool's content checksum (xxh3) per GB, against spooling the same bytes.

Run: .venv/bin/python benchmarks/checksum_cost.py [--instances N]
Spools N CT-sized instances (512x512x2 bytes and a header, in the listener's fragments) and
times, in the same run: the checksum alone over the same fragments, zlib's crc32 for
comparison, and the spool's whole write (which includes the checksum). The relay itself
spends about 4.4 CPU-seconds per GB (README Speed): compare the checksum with that.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.dicom.spool import Spool, content_checksum


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=2000)
    args = parser.parse_args(argv)
    header, pixels = os.urandom(2048), os.urandom(512 * 512 * 2)
    parts = [header, memoryview(pixels)[:262144], memoryview(pixels)[262144:]]
    gigabytes = args.instances * (len(header) + len(pixels)) / 1e9
    started = time.perf_counter()
    for _ in range(args.instances):
        content_checksum(parts)
    xxh = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(args.instances):
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
    crc_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        spool = Spool(Path(folder), 10**12)
        started = time.perf_counter()
        for _ in range(args.instances):
            spool.remove(spool.write_parts(parts).name)
        write = time.perf_counter() - started
    print(f"{args.instances:,} instances, {gigabytes:.2f} GB")
    print(f"  xxh3 checksum        {xxh / gigabytes:6.3f} s per GB")
    print(f"  crc32 (for scale)    {crc_s / gigabytes:6.3f} s per GB")
    print(f"  spool write (incl.)  {write / gigabytes:6.3f} s per GB")
    print(f"  checksum / spool write     {xxh / write:6.3f}")
    print(f"  checksum / relay CPU (4.4 s per GB)  {xxh / gigabytes / 4.4:6.3f}")


if __name__ == "__main__":
    main()
