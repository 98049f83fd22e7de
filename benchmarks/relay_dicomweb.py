"""The same relay over DICOMweb and over DIMSE, side by side in one run.

    .venv/bin/python benchmarks/relay_dicomweb.py [--studies 30 --instances 40 --rounds 2]

The 30-study relay of benchmarks/relay_vs_direct.py (synthetic 512x512 16-bit CT, one rule
setting InstitutionName, `verify: instances`, four destination connections), `pacsmig run`
from a source Orthanc into a fresh destination Orthanc with its DICOMweb plugin, three
ways per round (order rotated each round): (a) C-STORE (the DIMSE path), (b) STOW-RS
batched per study (`max_instances_per_request` 50), (c) STOW-RS one instance per request.
Prints the median seconds and MB/s and the median of the rounds' ratios
dimse_seconds / dicomweb_seconds (>= 1.0: DICOMweb as fast), the CPU seconds of each
party, and writes JSON to benchmarks/results/relay_dicomweb.json. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.relay_vs_direct import (  # noqa: E402
    BIG_ORTHANC,
    INSTITUTION,
    LISTENER_AE,
    Timing,
    _evict,
    check_morphed,
    children_cpu,
    cpu_seconds,
    cpu_used,
    ledger_breakdown,
    load_source,
)
from runner.dicom.peer import Peer  # noqa: E402
from runner.sim.generate import ct_512, synthetic_archive  # noqa: E402
from tests.peers import OrthancProcess, free_port  # noqa: E402
from tests.profiles import profile_data, write_profile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "relay_dicomweb.json"
WAYS = {"dimse": None, "dicomweb_batched": 50, "dicomweb_one_per_request": 1}


def main() -> None:
    """Parse the arguments, run the rounds, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=30)
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay-web-bench-"))
    try:
        report = run(work, args.studies, args.instances, args.rounds)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"written to {RESULTS.relative_to(ROOT)}")


def run(work: Path, studies: int, instances: int, rounds: int) -> dict[str, Any]:
    """Every round's three relays, summarized."""
    specs = [ct_512(s) for s in synthetic_archive("relay", studies, date(2015, 1, 1),
                                                  date(2020, 1, 1), modalities=("CT",),
                                                  instances_per_series=instances)]
    listener = Peer(LISTENER_AE, "127.0.0.1", free_port())
    source = OrthancProcess(work / "source", aet="OLDPACS", modalities={"pacsmig": listener},
                            extra_config=BIG_ORTHANC).start()
    measured: list[dict[str, Timing]] = []
    breakdowns: dict[str, list[dict[str, float]]] = {name: [] for name in WAYS}
    try:
        megabytes = load_source(work / "files", source, specs)
        _evict([work / "files"])
        for number in range(rounds):
            print(f"-- round {number + 1} of {rounds}")
            names = list(WAYS)
            shift = number % len(names)
            timings: dict[str, Timing] = {}
            for name in names[shift:] + names[:shift]:
                folder = work / f"{name}-{number}"
                dest = OrthancProcess(folder / "orthanc", aet="NEWVNA", plugins=("dicomweb",),
                                      extra_config={**BIG_ORTHANC, "HttpThreadsCount": 8},
                                      modalities={"pacsmig": listener}).start()
                try:
                    timings[name] = relay(folder, source, dest, listener, name)
                    breakdowns[name].append(ledger_breakdown(
                        folder / "reports" / "ledger.duckdb", timings[name].seconds))
                finally:
                    dest.kill()
                    _evict([folder])
            measured.append(timings)
    finally:
        source.kill()
    return summarize(megabytes, sum(s.instance_count for s in specs), measured, breakdowns)


def relay(site: Path, source: OrthancProcess, dest: OrthancProcess, listener: Peer,
          way: str) -> Timing:
    """`pacsmig run` into `dest` one way (C-STORE, or STOW-RS with WAYS[way] per request)."""
    data = profile_data(site, [("old1", source.peer)], dest.peer, listener.port,
                        destination={"max_associations": 4}, listener={"max_spool_gb": 8},
                        morphing=[{"set": {"InstitutionName": INSTITUTION}}])
    batch = WAYS[way]
    if batch is not None:
        data["destination"] = {"name": "Orthanc DICOMweb", "max_associations": 4,
                               "verify": "instances",
                               "dicomweb": {"url": dest.dicomweb_url,
                                            "max_instances_per_request": batch}}
    profile = write_profile(site, data)
    before = (cpu_seconds(source), cpu_seconds(dest), children_cpu())
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "runner", "run", str(profile)], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
    count = int(dest.rest_get("/statistics")["CountInstances"])
    cpu = cpu_used(source, dest, before)
    print(f"{way}: {seconds:.2f} s, {count} instances, exit {result.returncode}, CPU s {cpu}")
    check_morphed(dest)
    return Timing(way, seconds, count, cpu)


def summarize(megabytes: float, expected: int, measured: list[dict[str, Timing]],
              breakdowns: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Print medians and ratios; the JSON report."""
    seconds = {name: [r[name].seconds for r in measured] for name in WAYS}
    median = {name: statistics.median(v) for name, v in seconds.items()}
    print(f"\n{expected} instances, {megabytes:.0f} MB, {len(measured)} round(s); medians")
    for name in WAYS:
        short = sum(1 for r in measured if r[name].instances != expected)
        flag = f"  ({short} round(s) incomplete!)" if short else ""
        print(f"  {name:26s} {median[name]:7.2f} s {megabytes / median[name]:6.1f} MB/s  "
              f"({' '.join(f'{v:.2f}' for v in seconds[name])}){flag}")
    ratios = {f"dimse_over_{name}": statistics.median(r["dimse"].seconds / r[name].seconds
                                                      for r in measured)
              for name in WAYS if name != "dimse"}
    for name, ratio in ratios.items():
        print(f"  {name:40s} {ratio:5.2f}")
    cpu = {name: {party: statistics.median(r[name].cpu[party] for r in measured)
                  for party in ("source", "destination", "mover")} for name in WAYS}
    for name, parts in cpu.items():
        print(f"  CPU {name:22s} " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    spans = ("receiving_span", "forwarding_span", "forward_lag_after_last_receipt",
             "share_forwarded_while_retrieving", "verify_tail_after_last_forward",
             "migration_span")
    breakdown = {name: {key: round(statistics.median(b[key] for b in runs), 3)
                        for key in spans} for name, runs in breakdowns.items()}
    print("  where the time went (ledger, medians): " + ", ".join(spans))
    for name, values in breakdown.items():
        print(f"    {name:26s} " + " ".join(f"{v:7.2f}" for v in values.values()))
    return {"breakdown": breakdown, "instances": expected, "megabytes": round(megabytes, 1),
            "rounds": len(measured),
            "seconds": seconds, "median_seconds": median, "ratios": ratios,
            "median_cpu_seconds": cpu,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


if __name__ == "__main__":
    main()
