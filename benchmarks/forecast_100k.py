"""Benchmark: forecasting every strategy of a 100,000-study plan, against compiling the plan.

Run: .venv/bin/python benchmarks/forecast_100k.py [--rows N] [--local-store-gb GB]
Generates the inventory (benchmarks/inventory_csv_1m.py), compiles the plan with the spec's
profile (the baseline, timed in the same run), then times the forecast of each strategy.
`--local-store-gb 0` makes the local store exactly full at the start, so that recalls push
studies off (the profile's 40,000 GB holds the whole synthetic inventory). The machine is
noisy: compare the ratios between runs, not the seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.inventory_csv_1m import write_synthetic_inventory
from runner.inventory.csv_reader import read_inventory_csv
from runner.morph.loaded import load_profile, profile_rules
from runner.plan.compile import compile_plan
from runner.plan.model import Plan
from runner.profile.models import SiteProfile
from runner.tiering.forecast import forecast_lines, forecast_strategies
from runner.tiering.params import TierParameters
from runner.tiering.scenario import build_scenario, start_of
from runner.tiering.simulate import Simulation
from runner.tiering.strategy import strategies_for

PROFILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "spec" / "site-profile.v1.yaml"
TODAY = date(2026, 11, 27)


def _plan(profile: SiteProfile, rows: int) -> tuple[Plan, float]:
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = write_synthetic_inventory(Path(tmp) / "inventory.csv", rows)
        inventory = read_inventory_csv(csv_path, [d.id for d in profile.source.devices])
    started = time.perf_counter()
    plan = compile_plan(profile, inventory, TODAY, rules=profile_rules(profile))
    return plan, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--local-store-gb", type=float, default=None,
                        help="override the profile's tiering.local_store_gb")
    args = parser.parse_args(argv)
    profile = load_profile(PROFILE).profile
    plan, compile_s = _plan(profile, args.rows)
    params = TierParameters.from_profile(profile)
    if args.local_store_gb is not None:
        params = replace(params, local_store_gb=args.local_store_gb)
    print(f"{args.rows:,} studies ({plan.studies:,} planned), profile {PROFILE.name}")
    print(f"  {'compile plan (baseline)':<40} {compile_s:7.2f} s")
    started = time.perf_counter()
    scenario = build_scenario(plan, start_of(plan, None), params)
    setup_s = time.perf_counter() - started
    print(f"  {'forecast set-up (shared)':<40} {setup_s:7.2f} s")
    total = setup_s
    for strategy in strategies_for(profile):
        started = time.perf_counter()
        Simulation(scenario, strategy).run()
        seconds = time.perf_counter() - started
        total += seconds
        print(f"  {strategy.name:<40} {seconds:7.2f} s")
    print(f"  {'forecast, every strategy':<40} {total:7.2f} s")
    print(f"  forecast / compile ratio                 {total / compile_s:7.2f}")
    print()
    started = time.perf_counter()
    lines = forecast_lines(forecast_strategies(profile, plan, params=params))
    print(f"forecast_strategies + forecast_lines: {time.perf_counter() - started:.2f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
