"""Benchmark: reading a realistic 1,000,000-study inventory CSV, against a bare csv loop.

Run: .venv/bin/python benchmarks/inventory_csv_1m.py [CSV_PATH] [--rows N]
The CSV is generated (into a temporary folder unless a path is given). The machine is
noisy, so a baseline (csv.reader counting rows) is timed in the same run and the ratio
is printed: the ratio is the figure to compare between runs.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.inventory.csv_reader import read_inventory_csv
from runner.inventory.csv_values import HEADER

UID_ROOT = "1.2.826.0.1.3680043.8.498"
FIRST_DAY = date(2005, 1, 1)
LAST_DAY = date(2026, 12, 31)
DEVICES = ("wfm1", "wfm2")

# modality: (weight, typical instances, typical MB per instance)
MODALITIES: dict[str, tuple[float, int, float]] = {
    "CR": (22.0, 2, 9.0),
    "DX": (18.0, 2, 10.0),
    "CT": (14.0, 350, 0.52),
    "MR": (9.0, 420, 0.25),
    "US": (13.0, 30, 0.9),
    "MG": (6.0, 4, 28.0),
    "NM": (2.0, 20, 1.2),
    "XA": (3.0, 60, 1.0),
    "RF": (3.0, 15, 1.5),
    "PT": (1.5, 300, 0.15),
    "SR": (5.0, 1, 0.02),
    "OT": (3.5, 3, 2.0),
}


def write_synthetic_inventory(path: Path, n: int, seed: int = 1) -> Path:
    """Write an n-study inventory CSV shaped like a hospital's: more studies in later
    years, modalities weighted, sizes by modality, old studies mostly nearline."""
    rng = random.Random(seed)
    names = list(MODALITIES)
    weights = [MODALITIES[name][0] for name in names]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for index, modality in enumerate(rng.choices(names, weights, k=n)):
            writer.writerow(_row(rng, index, modality))
    return path


def _row(rng: random.Random, index: int, modality: str) -> tuple[str, ...]:
    study_day = _study_day(rng)
    _, instances_typical, mb_each = MODALITIES[modality]
    instances = max(1, round(rng.lognormvariate(0.0, 0.5) * instances_typical))
    size = "" if rng.random() < 0.02 else f"{instances * mb_each * rng.uniform(0.8, 1.2):.1f}"
    device = "" if rng.random() < 0.05 else rng.choice(DEVICES)
    return (
        f"{UID_ROOT}.{study_day.year}.{index + 1}",
        study_day.strftime("%Y%m%d"),
        modality,
        str(instances),
        size,
        _location(rng, study_day.year),
        device,
    )


def _study_day(rng: random.Random) -> date:
    """Later years are busier: the day is drawn with a density rising over the period."""
    span = (LAST_DAY - FIRST_DAY).days
    return FIRST_DAY + timedelta(days=int(span * rng.random() ** 0.7))


def _location(rng: random.Random, year: int) -> str:
    draw = rng.random()
    if year < 2018:
        return "nearline" if draw < 0.7 else ("offline" if draw < 0.75 else "local")
    return "nearline" if draw < 0.2 else "local"


def _count_rows(path: Path) -> int:
    """The baseline: the least any CSV reader must do, count the rows."""
    with path.open(encoding="utf-8", newline="") as source:
        return sum(1 for _ in csv.reader(source))


def _best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _measure(path: Path, rows: int) -> None:
    studies = len(read_inventory_csv(path, DEVICES).studies)
    assert studies == rows, f"read {studies} studies, expected {rows}"
    reader = _best_of(3, lambda: read_inventory_csv(path, DEVICES))
    baseline = _best_of(3, lambda: _count_rows(path))
    print(f"read_inventory_csv: {reader:.2f} s, {rows / reader:,.0f} rows/s (best of 3)")
    print(f"baseline csv.reader count: {baseline:.2f} s, {rows / baseline:,.0f} rows/s")
    print(f"ratio reader / baseline: {reader / baseline:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("csv_path", nargs="?", type=Path, help="where to write the CSV")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path: Path = args.csv_path or Path(folder) / "inventory.csv"
        start = time.perf_counter()
        write_synthetic_inventory(path, args.rows, seed=1)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.rows:,} studies ({size_mb:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s: {path}")
        _measure(path, args.rows)


if __name__ == "__main__":
    main()
