"""Benchmark: compiling the plan of a 1,000,000-study inventory, against reading it alone.

Run: .venv/bin/python benchmarks/plan_1m.py [--rows N]
Generates the inventory (benchmarks/inventory_csv_1m.py), then times in the same run:
reading the CSV (the baseline), compiling the plan, and writing the plan JSON. The machine
is noisy: compare the ratios between runs, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.inventory_csv_1m import write_synthetic_inventory
from runner.inventory.csv_reader import read_inventory_csv
from runner.morph.loaded import load_profile, profile_rules
from runner.plan.compile import compile_plan
from runner.plan.explain import explain, plan_json

PROFILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "spec" / "site-profile.v1.yaml"
TODAY = date(2026, 11, 27)


def _timed(label: str, work: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = work() if callable(work) else work
    seconds = time.perf_counter() - started
    print(f"  {label:<28} {seconds:7.2f} s")
    return seconds, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    profile = load_profile(PROFILE).profile
    devices = [d.id for d in profile.source.devices]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = write_synthetic_inventory(Path(tmp) / "inventory.csv", args.rows)
        print(f"{args.rows:,} studies, profile {PROFILE.name}")
        read_s, inventory = _timed("read CSV (baseline)",
                                   lambda: read_inventory_csv(csv_path, devices))
        compile_s, plan = _timed("compile plan", lambda: compile_plan(
            profile, inventory, TODAY, rules=profile_rules(profile)))
        explain_s, _ = _timed("explain (text)", lambda: explain(plan))
        out = Path(tmp) / "plan.json"
        json_s, _ = _timed("write plan JSON", lambda: out.write_text(json.dumps(plan_json(plan))))
    total = read_s + compile_s + explain_s + json_s
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {'total':<28} {total:7.2f} s   peak RSS {peak_mb:,.0f} MB")
    print(f"  compile / read ratio         {compile_s / read_s:7.2f}")
    print(f"  whole plan / read ratio      {total / read_s:7.2f}")


if __name__ == "__main__":
    main()
