"""Benchmark: memory of holding a 1,000,000-study plan, and of what `run` builds from it.

Run: .venv/bin/python benchmarks/plan_memory.py [--rows N]
Reads the synthetic inventory (benchmarks/inventory_csv_1m.py), compiles the plan, then
builds what `pacsmig run` holds for a plan none of whose studies is done yet: one StudyWork
per study (as runner.execute.resume.works_left makes them), the engine's index of them by
Study Instance UID, and the per-device queues.
Prints the resident memory after each step and per study (RSS from /proc, peak from
getrusage), and writes benchmarks/results/plan_memory.json.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import resource
import sys
import tempfile
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.inventory_csv_1m import write_synthetic_inventory
from runner.execute.work import DeviceQueues, StudyWork
from runner.inventory.csv_reader import read_inventory_csv
from runner.morph.loaded import load_profile, profile_rules
from runner.plan.compile import compile_plan
from runner.plan.model import Plan

RESULTS = Path(__file__).resolve().parent / "results" / "plan_memory.json"
PROFILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "spec" / "site-profile.v1.yaml"
TODAY = date(2026, 11, 27)  # as benchmarks/plan_1m.py


def rss_mb() -> float:
    """Resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    """Peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def works_for(plan: Plan) -> list[StudyWork]:
    """One StudyWork per planned study, as works_left builds them when nothing is done."""
    return [StudyWork(study, index, order, device, expected=study.instances)
            for index, phase in enumerate(plan.phases)
            for order, (study, device) in enumerate(zip(phase.studies, phase.devices,
                                                         strict=True))]


def main(argv: list[str] | None = None) -> None:
    """Measure each step and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    profile = load_profile(PROFILE).profile
    devices = [d.id for d in profile.source.devices]
    steps: dict[str, float] = {"start": rss_mb()}
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = write_synthetic_inventory(Path(tmp) / "inventory.csv", args.rows)
        inventory = read_inventory_csv(csv_path, devices)
    steps["inventory read"] = rss_mb()
    plan = compile_plan(profile, inventory, TODAY, rules=profile_rules(profile))
    steps["plan compiled"] = rss_mb()
    del inventory
    gc.collect()
    steps["inventory dropped"] = rss_mb()
    works = works_for(plan)
    steps["StudyWork per study"] = rss_mb()
    by_uid = {work.uid: work for work in works}  # the engine's index of them
    steps["engine index by UID"] = rss_mb()
    queues = DeviceQueues(d.id for d in plan.devices)
    for work in works:
        queues.push(work)
    steps["device queues"] = rss_mb()
    report = summarize(args.rows, steps, len(by_uid), len(queues))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))


def summarize(rows: int, steps: dict[str, float], works: int, queued: int) -> dict[str, object]:
    """Print the steps and per-study costs; the JSON report."""
    print(f"{rows:,} studies ({works:,} StudyWork, {queued:,} queued)")
    names = list(steps)
    for before, after in itertools.pairwise(names):
        grew = steps[after] - steps[before]
        print(f"  {after:<22} RSS {steps[after]:8,.0f} MB  (+{grew:7,.0f} MB, "
              f"{grew * 1024 * 1024 / max(rows, 1):6.0f} B/study)")
    print(f"  peak RSS {peak_mb():,.0f} MB")
    return {"rows": rows, "rss_mb": {k: round(v, 1) for k, v in steps.items()},
            "peak_rss_mb": round(peak_mb(), 1)}


if __name__ == "__main__":
    main()
