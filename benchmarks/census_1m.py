"""Benchmark: the census of a 1,000,000-study source (simulated answers), against the plan
compile it feeds, in the same run.

Run: .venv/bin/python benchmarks/census_1m.py [--studies N] [--cap N] [--silent]
     [--max-results N]
The simulated source holds N studies over fifteen years (3 % without a Study Date, 1 %
dated before the profile's window), numeric Patient IDs, and answers at most `cap` studies
per query: with 0xA700 (dcm4chee's way) or, with --silent, with success (Orthanc's
LimitFindResults answers 0xFE00; a silent cap is the hardest case). It answers from sorted
indexes, so its own time stands for the round trips of a real source; the census's time
is the rest. Printed: queries, answers, time answering (the source) and the census's own
time, their ratio, and compiling the plan of the same studies. Compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from bisect import bisect_left, bisect_right
from datetime import date, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.inventory.census import Answer, Keys, Outcome, Seen, take_census
from runner.inventory.model import Census, Inventory, Study
from runner.inventory.windows import date_windows
from runner.morph.loaded import load_profile, profile_rules
from runner.plan.compile import compile_plan
from runner.profile.tiers import Location

PROFILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "spec" / "site-profile.v1.yaml"
TODAY = date(2026, 11, 27)
FIRST = date(2011, 1, 1)
# What a C-FIND costs at a real source on loopback, as measured by this project: an
# association and a query about 3 ms (C-ECHO alone: 3 ms), each answer decoded 48 us.
QUERY_S, ANSWER_S = 0.003, 48e-6


class SimulatedSource:
    """A source answering study-level queries from sorted indexes, with an answer cap."""

    def __init__(self, studies: list[Seen], cap: int, silent: bool) -> None:
        dated = sorted((s for s in studies if s.study_date is not None),
                       key=lambda s: s.study_date or FIRST)
        self.by_date = dated
        self.dates = [s.study_date for s in dated]
        self.by_patient = sorted(studies, key=lambda s: s.patient_id)
        self.patients = [s.patient_id for s in self.by_patient]
        self.cap, self.silent = cap, silent
        self.seconds = 0.0
        self.answers = 0

    def query(self, keys: Keys) -> Answer[Seen]:
        started = time.perf_counter()
        found = self._matches(keys)
        if len(found) <= self.cap:
            answer = Answer(tuple(found), Outcome.ANSWERED)
        elif self.silent:
            answer = Answer(tuple(found[:self.cap]), Outcome.ANSWERED)
        else:
            answer = Answer((), Outcome.FULL, "0xA700 out of resources")
        self.answers += len(answer.records)
        self.seconds += time.perf_counter() - started
        return answer

    def _matches(self, keys: Keys) -> list[Seen]:
        if not keys.patient and not keys.exact:
            if keys.window is None:
                return self.by_patient
            first = bisect_left(self.dates, keys.window.first)
            return self.by_date[first:bisect_right(self.dates, keys.window.last)]
        low = bisect_left(self.patients, keys.patient)
        high = (bisect_right(self.patients, keys.patient) if keys.exact
                else bisect_left(self.patients, keys.patient + "\U0010ffff"))
        found = self.by_patient[low:high]
        window = keys.window
        if window is None:
            return found
        return [s for s in found if s.study_date is not None
                and window.first <= s.study_date <= window.last]


def synthetic_source(count: int, seed: int = 7) -> list[Seen]:
    """`count` studies: numeric 8-digit Patient IDs (about 3 studies each), dates over 15
    years growing year on year, 3 % undated, 1 % before 2011."""
    rng = random.Random(seed)
    span = (TODAY - FIRST).days
    studies: list[Seen] = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.03:
            day: date | None = None
        elif roll < 0.04:
            day = FIRST - timedelta(days=rng.randint(1, 3000))
        else:
            day = FIRST + timedelta(days=int(span * rng.random() ** 0.8))
        patient = f"{rng.randint(10_000_000, 10_000_000 + count // 3):08d}"
        studies.append(Seen(f"1.2.826.0.1.3680043.8.498.{n + 1}", day, patient))
    return studies


def _as_study(seen: Seen) -> Study:
    return Study(seen.uid, seen.study_date, "CT", 100, None, Location.LOCAL, None,
                 seen.patient_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=1_000_000)
    parser.add_argument("--cap", type=int, default=1000)
    parser.add_argument("--silent", action="store_true")
    parser.add_argument("--max-results", type=int, default=1000,
                        help="the profile's max_results (above --cap: a cap to be learned)")
    args = parser.parse_args(argv)
    profile = load_profile(PROFILE).profile
    studies = synthetic_source(args.studies)
    source = SimulatedSource(studies, args.cap, args.silent)
    windows = date_windows(date(2007, 1, 1), TODAY, 30)
    started = time.perf_counter()
    result = take_census(source.query, lambda s: s, windows, True, args.max_results)
    census_s = time.perf_counter() - started
    own = census_s - source.seconds
    inventory = Inventory(tuple(map(_as_study, result.records.values())), "benchmark",
                          census=Census("simulated", result.queries))
    started = time.perf_counter()
    plan = compile_plan(profile, inventory, TODAY, rules=profile_rules(profile))
    compile_s = time.perf_counter() - started
    kind = "silently" if args.silent else "with 0xA700"
    print(f"{args.studies:,} studies, a source capping answers at {args.cap:,} {kind}")
    print(f"  found {len(result.records):,} studies ({plan.undated:,} undated planned, "
          f"{len(plan.excluded):,} excluded); learned cap {result.cap}; gaps {len(result.gaps)}")
    print(f"  queries {result.queries:,} ({result.splits:,} splits, {result.probes:,} probes),"
          f" answers {source.answers:,}")
    trips = result.queries * QUERY_S + source.answers * ANSWER_S
    print(f"  the simulated source answering          {source.seconds:7.2f} s")
    print(f"  the census's own work                   {own:7.2f} s")
    print(f"  compiling the plan (baseline)           {compile_s:7.2f} s")
    print(f"  the same C-FINDs at a real source       {trips:7.0f} s (modelled: {QUERY_S * 1e3:g} "
          f"ms a query, {ANSWER_S * 1e6:g} us an answer)")
    print(f"  census own / plan compile ratio         {own / compile_s:7.2f}")
    print(f"  census own / real round trips ratio     {own / trips:7.3f}")


if __name__ == "__main__":
    main()
