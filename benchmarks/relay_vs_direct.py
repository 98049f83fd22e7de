"""Runner vs direct C-MOVE: the same studies Orthanc -> Orthanc, straight and through pacsmig.

    .venv/bin/python benchmarks/relay_vs_direct.py [--studies 30 --instances 40 --rounds 3]
        [--regimes warm,cold]

Generates N synthetic CT studies (512x512, 16 bit), loads them into a source Orthanc with
storescu, then, in each regime (warm: the source's files in the page cache; cold: evicted
before each move) and each of --rounds rounds (default 3; the order of the moves rotates
from round to round, every move goes into a fresh destination Orthanc), moves them six
ways: DCMTK movescu, one study at a time, then four movescu processes at a time (the source
sends straight to the destination); a relay in C (movescu four at a time into DCMTK's
storescp, then storescu: benchmarks/relay_baselines.py); `python -m runner run PROFILE`
(one rule sets InstitutionName on every instance, `verify: instances`, throttles 4/4/0, four
destination associations) through the spool only (`listener.max_memory_mb: 0`), with
cut-through (the default), and plain (cut-through with no rule and `verify: counts`: the
least work a run does per instance, to tell the cost of moving the bytes from the cost of
morphing and checking them). Prints the median seconds and MB/s, the median of the rounds'
ratios other_seconds / runner_seconds (>= 1.0: the runner is as fast), the CPU seconds per
GB of each mover, where the runner's time went (from its ledger), and writes JSON to
benchmarks/results/relay_vs_direct.json. Every peer runs with TCP_NODELAY=1. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.relay_baselines import (  # noqa: E402
    RELAY_AE,
    children_cpu,
    dcmtk_relay,
    evict,
)
from runner.dicom.peer import Peer  # noqa: E402
from runner.sim.generate import (  # noqa: E402
    StudySpec,
    ct_512,
    make_study,
    synthetic_archive,
    to_bytes,
)
from tests.peers import OrthancProcess, free_port, peer_env  # noqa: E402
from tests.profiles import profile_data, write_profile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "relay_vs_direct.json"
INSTITUTION = "Relay Benchmark Hospital"
LISTENER_AE = "PACSMIG"
MOVESCU_AE = "MOVESCU"
BIG_ORTHANC = {"DicomThreadsCount": 8, "ConcurrentJobs": 4, "MaximumPduLength": 131072}


@dataclass(frozen=True)
class Timing:
    """One way of moving the studies: how long it took and whether everything arrived.

    `cpu` is the CPU seconds each party used meanwhile (source, destination, the mover).
    """

    name: str
    seconds: float
    instances: int
    cpu: dict[str, float]

    def mb_per_s(self, megabytes: float) -> float:
        """Throughput for `megabytes` moved."""
        return megabytes / self.seconds if self.seconds else 0.0


def main() -> None:
    """Parse the arguments, run the moves, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=30)
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the six moves, in rotated order, each into fresh "
                             "destinations; the figures are the medians (default 3)")
    parser.add_argument("--regimes", default="warm,cold",
                        help="warm: the source's files in the page cache; cold: evicted "
                             "before each move (default: both, each --rounds rounds)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--py-spy", metavar="PY_SPY", default=None,
                        help="profile the runner with this py-spy binary (collapsed stacks "
                             "in benchmarks/results/relay_runner.stacks)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    try:
        report = run(work, args.studies, args.instances, args.py_spy, args.rounds,
                     args.regimes.split(","))
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"written to {RESULTS.relative_to(ROOT)}")


def run(work: Path, studies: int, instances: int, py_spy: str | None,
        rounds: int, regimes: list[str]) -> dict[str, Any]:
    """Every measurement of one benchmark run, as the JSON report (one part per regime).

    Each round starts fresh destination Orthancs (same AE titles and ports, so the source's
    configuration holds) and runs the six moves in an order rotated by one each round, so
    that none always runs first or last on a machine whose load drifts. After each round its
    destinations' files are evicted from the page cache (see `_evict`); in the cold regime
    the source's files are too, before each move.
    """
    specs = [ct_512(s) for s in synthetic_archive("relay", studies, date(2015, 1, 1),
                                                  date(2020, 1, 1), modalities=("CT",),
                                                  instances_per_series=instances)]
    listener = Peer(LISTENER_AE, "127.0.0.1", free_port())
    relay_port = free_port()
    ports = [(free_port(), free_port()) for _ in range(len(MOVES))]
    names = [f"NEWVNA{i}" for i in range(len(MOVES))]
    modalities = {"pacsmig": listener, "relay": Peer(RELAY_AE, "127.0.0.1", relay_port),
                  **{name: Peer(name, "127.0.0.1", dicom) for name, (dicom, _) in
                     zip(names, ports, strict=True)}}
    source = OrthancProcess(work / "source", aet="OLDPACS", modalities=modalities,
                            extra_config=BIG_ORTHANC).start()
    report: dict[str, Any] = {}
    try:
        megabytes = load_source(work / "files", source, specs)
        _evict([work / "files"])  # written to load the source, never read again
        for regime in regimes:
            measured: list[list[Timing]] = []
            breakdowns: list[dict[str, float]] = []
            for number in range(rounds):
                print(f"-- {regime}: round {number + 1} of {rounds}")
                tag = f"{regime}-{number}"
                dests = [OrthancProcess(work / f"dest-{tag}-{i}", aet=name, dicom_port=dicom,
                                        http_port=http, extra_config=BIG_ORTHANC,
                                        modalities={"pacsmig": listener})
                         for i, (name, (dicom, http)) in enumerate(zip(names, ports,
                                                                      strict=True))]
                try:
                    for dest in dests:
                        dest.start()
                    cold = (lambda: _evict([source.workdir / "db"])) if regime == "cold" \
                        else (lambda: None)
                    moves: dict[str, Callable[[], Timing]] = {
                        "direct_1_at_a_time": partial(direct, source, dests[0], specs, 1),
                        "direct_4_at_a_time": partial(direct, source, dests[1], specs, 4),
                        "dcmtk_relay": partial(_dcmtk, source, dests[2], specs,
                                               work / f"relay-{tag}", relay_port),
                        "runner_through_spool": partial(
                            _relay_round, work / f"spool-{tag}", source, dests[3], listener,
                            len(specs), None, [], 0),
                        "runner_plain": partial(
                            _relay_round, work / f"plain-{tag}", source, dests[4], listener,
                            len(specs), None, [], None, plain=True),
                        "runner": partial(_relay_round, work / f"site-{tag}", source, dests[5],
                                          listener, len(specs),
                                          py_spy if number == 0 else None, breakdowns, None),
                    }
                    order = list(moves)
                    shift = number % len(order)
                    timings: dict[str, Timing] = {}
                    for name in order[shift:] + order[:shift]:
                        cold()
                        timings[name] = moves[name]()
                    measured.append([timings[name] for name in MOVES])
                finally:
                    for dest in dests:
                        dest.kill()
                    _evict(work / f"dest-{tag}-{i}" for i in range(len(dests)))
            report[regime] = summarize(specs, megabytes, measured, breakdowns)
    finally:
        source.kill()
    return report


# the runner last: the others' ratios are to it
MOVES = ("direct_1_at_a_time", "direct_4_at_a_time", "dcmtk_relay", "runner_through_spool",
         "runner_plain", "runner")


def _dcmtk(source: OrthancProcess, dest: OrthancProcess, specs: list[StudySpec],
           folder: Path, port: int) -> Timing:
    seconds, cpu = dcmtk_relay(source, dest, [str(s.study_uid) for s in specs], folder, port,
                               peer_env())
    count = int(dest.rest_get("/statistics")["CountInstances"])
    print(f"DCMTK relay (storescp, then storescu): {seconds:.2f} s, {count} instances, "
          f"CPU s {cpu}")
    return Timing("dcmtk_relay", seconds, count, cpu)


def _evict(folders: Iterable[Path]) -> None:
    """Drop the files under `folders` from the page cache (they stay on disk).

    Each round leaves three destinations' files (1.9 GB) in the page cache. Kept there, they
    made every move from the fourth round on slower, the runner's most (its spool and its
    destination write the most new pages: perf showed 27 to 34% of their CPU copying into
    the page cache, against 2% in the first round). Evicted, the rounds run alike.
    """
    evicted = sum(evict(folder) for folder in folders)
    print(f"   (evicted {evicted} files from the page cache)")


def _relay_round(site: Path, source: OrthancProcess, dest: OrthancProcess, listener: Peer,
                 studies: int, py_spy: str | None,
                 breakdowns: list[dict[str, float]], memory_mb: int | None,
                 plain: bool = False) -> Timing:
    timing, breakdown = relay(site, source, dest, listener, studies, py_spy, memory_mb, plain)
    breakdowns.append(breakdown)
    if plain:
        return replace(timing, name="runner_plain")
    return timing if memory_mb is None else replace(timing, name="runner_through_spool")


def load_source(folder: Path, source: OrthancProcess, specs: list[StudySpec]) -> float:
    """Write every study's files and send them to the source with storescu; total MB."""
    folder.mkdir(parents=True)
    total = 0
    for index, spec in enumerate(specs):
        for number, ds in enumerate(make_study(spec)):
            raw = to_bytes(ds)
            (folder / f"{index:04d}-{number:05d}.dcm").write_bytes(raw)
            total += len(raw)
    started = time.monotonic()
    subprocess.run(["storescu", "-aec", source.aet, "-xs", "+sd", "+r", "127.0.0.1",
                    str(source.dicom_port), str(folder)],
                   check=True, env=peer_env(), capture_output=True)
    count = source.rest_get("/statistics")["CountInstances"]
    print(f"source loaded: {count} instances, {total / 1e6:.0f} MB "
          f"in {time.monotonic() - started:.1f} s")
    return total / 1e6


def movescu(source: OrthancProcess, dest: OrthancProcess, study_uid: str) -> None:
    """One DCMTK C-MOVE of a whole study from `source` to `dest`."""
    subprocess.run(["movescu", "-S", "-aet", MOVESCU_AE, "-aec", source.aet, "-aem", dest.aet,
                    "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                    "127.0.0.1", str(source.dicom_port)],
                   check=True, env=peer_env(), capture_output=True)


def cpu_seconds(orthanc: OrthancProcess) -> float:
    """User + system CPU seconds an Orthanc process has used so far."""
    assert orthanc._proc is not None
    fields = Path(f"/proc/{orthanc._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used(source: OrthancProcess, dest: OrthancProcess,
             before: tuple[float, float, float]) -> dict[str, float]:
    """CPU seconds used by the source, the destination and the mover since `before`."""
    now = (cpu_seconds(source), cpu_seconds(dest), children_cpu())
    return {name: round(b - a, 2) for name, a, b in
            zip(("source", "destination", "mover"), before, now, strict=True)}


def direct(source: OrthancProcess, dest: OrthancProcess, specs: list[StudySpec],
           parallel: int) -> Timing:
    """Move every study with movescu, `parallel` processes at a time."""
    before = (cpu_seconds(source), cpu_seconds(dest), children_cpu())
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda s: movescu(source, dest, str(s.study_uid)), specs))
    seconds = time.monotonic() - started
    count = int(dest.rest_get("/statistics")["CountInstances"])
    cpu = cpu_used(source, dest, before)
    print(f"direct C-MOVE, {parallel} at a time: {seconds:.2f} s, {count} instances, "
          f"CPU s {cpu}")
    return Timing(f"direct_{parallel}_at_a_time", seconds, count, cpu)


def relay(site: Path, source: OrthancProcess, dest: OrthancProcess, listener: Peer,
          studies: int, py_spy: str | None,
          memory_mb: int | None = None,
          plain: bool = False) -> tuple[Timing, dict[str, float]]:
    """`pacsmig run` from `source` to `dest` with one rule and `verify: instances` (with
    `memory_mb`, that much memory for cut-through, 0: all through the spool; `plain`: no
    rule, `verify: counts`); its timing and breakdown."""
    site.mkdir()
    memory = {} if memory_mb is None else {"max_memory_mb": memory_mb}
    data = profile_data(site, [("old1", source.peer)], dest.peer, listener.port,
                        destination={"max_associations": 4,
                                     "verify": "counts" if plain else "instances"},
                        listener={"max_spool_gb": 8, **memory},
                        morphing=[] if plain else [{"set": {"InstitutionName": INSTITUTION}}])
    profile = write_profile(site, data)
    command = [sys.executable, "-m", "runner", "run", str(profile)]
    if py_spy:
        stacks = RESULTS.parent / "relay_runner.stacks"
        command = [py_spy, "record", "--threads", "--gil", "--subprocesses", "-r", "250",
                   "-f", "raw", "-o", str(stacks), "--", *command]
    before = (cpu_seconds(source), cpu_seconds(dest), children_cpu())
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT,
                            capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
    count = int(dest.rest_get("/statistics")["CountInstances"])
    cpu = cpu_used(source, dest, before)
    print(f"pacsmig run: {seconds:.2f} s, {count} instances, exit {result.returncode}, "
          f"CPU s {cpu}")
    if not plain:
        check_morphed(dest)
    breakdown = ledger_breakdown(site / "reports" / "ledger.duckdb", seconds)
    breakdown["studies_verified"] = float(_verified(site / "reports" / "ledger.duckdb"))
    # the same command again, with nothing left to move: what a run costs whatever it moves
    # (start-up, census, plan, ledger), to tell the relay's own CPU per GB from it
    again = children_cpu()
    subprocess.run([sys.executable, "-m", "runner", "run", str(profile)], cwd=ROOT,
                   capture_output=True, text=True, check=False)
    cpu["fixed"] = round(children_cpu() - again, 2)
    if breakdown["studies_verified"] != studies:
        print(f"WARNING: {breakdown['studies_verified']:.0f} of {studies} studies verified")
    return Timing("runner", seconds, count, cpu), breakdown


def check_morphed(dest: OrthancProcess) -> None:
    """Fail loudly when the destination holds an instance the rule did not change."""
    first = dest.rest_get("/instances")[:1]
    for instance in first:
        tags = dest.rest_get(f"/instances/{instance}/simplified-tags")
        if tags.get("InstitutionName") != INSTITUTION:
            raise SystemExit(f"instance not morphed at the destination: {tags}")


def _verified(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM studies WHERE status = 'done'").fetchone()
    return int(row[0]) if row else 0


_SPANS = """
SELECT
  (SELECT epoch(min(started_at)) FROM retrieves) AS first_retrieve,
  (SELECT epoch(max(ended_at)) FROM retrieves) AS last_retrieve_end,
  (SELECT sum(epoch(ended_at) - epoch(started_at)) FROM retrieves) AS retrieve_sum,
  (SELECT epoch(min(received_at)) FROM receipts) AS first_receipt,
  (SELECT epoch(max(received_at)) FROM receipts) AS last_receipt,
  (SELECT epoch(min(attempted_at)) FROM forwards) AS first_forward,
  (SELECT epoch(max(attempted_at)) FROM forwards) AS last_forward,
  (SELECT count(*) FROM forwards f, (SELECT max(ended_at) AS e FROM retrieves) r
     WHERE f.attempted_at <= r.e) AS forwards_while_retrieving,
  (SELECT count(*) FROM forwards) AS forwards,
  (SELECT count(DISTINCT sop_instance_uid) FROM receipts WHERE spool_name <> 'memory')
     AS spooled,
  (SELECT epoch(max(verified_at)) FROM verifications) AS last_verification,
  (SELECT epoch(min(started_at)) FROM runs) AS run_start,
  (SELECT epoch(max(ended_at)) FROM runs) AS run_end
"""


def ledger_breakdown(path: Path, wall: float) -> dict[str, float]:
    """Where the run's time went, from the ledger's timestamps (seconds)."""
    with duckdb.connect(str(path), read_only=True) as conn:
        cursor = conn.execute(_SPANS)
        names = [d[0] for d in cursor.description]
        row = dict(zip(names, cursor.fetchone() or (), strict=True))
    t0 = float(row["first_retrieve"])
    return {
        "wall_seconds": wall,
        "before_first_retrieve": t0 - float(row["run_start"]) if row["run_start"] else 0.0,
        "retrieving_span": float(row["last_retrieve_end"]) - t0,
        "retrieve_seconds_summed": float(row["retrieve_sum"]),
        "first_receipt_after": float(row["first_receipt"]) - t0,
        "receiving_span": float(row["last_receipt"]) - float(row["first_receipt"]),
        "first_forward_after": float(row["first_forward"]) - t0,
        "forwarding_span": float(row["last_forward"]) - float(row["first_forward"]),
        "forward_lag_after_last_receipt": float(row["last_forward"])
        - float(row["last_receipt"]),
        "share_forwarded_while_retrieving": row["forwards_while_retrieving"]
        / max(1, row["forwards"]),
        "verify_tail_after_last_forward": float(row["last_verification"])
        - float(row["last_forward"]),
        "migration_span": float(row["last_verification"]) - t0,
        "after_last_verification": float(row["run_end"]) - float(row["last_verification"])
        if row["run_end"] else 0.0,
        "instances_through_the_disk_spool": float(row["spooled"]),
    }


def summarize(specs: list[StudySpec], megabytes: float, measured: list[list[Timing]],
              breakdowns: list[dict[str, float]]) -> dict[str, Any]:
    """Print the table (medians over the rounds) and build the JSON report."""
    expected = sum(s.instance_count for s in specs)
    names = [t.name for t in measured[0]]
    seconds = {name: [round_[i].seconds for round_ in measured]
               for i, name in enumerate(names)}
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"\n{len(specs)} studies, {expected} instances, {megabytes:.0f} MB, "
          f"{len(measured)} round(s); median (each round)")
    for name in names:
        short = [t for round_ in measured for t in round_ if t.name == name
                 and t.instances != expected]
        flag = f"  ({len(short)} round(s) incomplete!)" if short else ""
        each = " ".join(f"{v:.2f}" for v in seconds[name])
        print(f"  {name:24s} {median[name]:7.2f} s  {megabytes / median[name]:6.1f} MB/s"
              f"  ({each}){flag}")
    per_round = {f"{name}_over_runner": [round_[i].seconds / round_[-1].seconds
                                         for round_ in measured]
                 for i, name in enumerate(names[:-1])}
    ratios = {name: statistics.median(values) for name, values in per_round.items()}
    for name, ratio in ratios.items():
        each = " ".join(f"{v:.2f}" for v in per_round[name])
        print(f"  {name:32s} {ratio:5.2f}  ({each})")
    cpu = {name: {party: statistics.median(t.cpu[party] for round_ in measured
                                           for t in round_ if t.name == name)
                  for party in ("source", "destination", "mover")} for name in names}
    print("  CPU seconds (medians; less noisy than wall time when the machine is shared):")
    for name in names:
        parts = ", ".join(f"{party} {value:.2f}" for party, value in cpu[name].items())
        print(f"    {name:24s} {parts}, total {sum(cpu[name].values()):.2f}")
    fixed = {name: statistics.median(t.cpu.get("fixed", 0.0) for round_ in measured
                                      for t in round_ if t.name == name) for name in names}
    per_gb = {name: (cpu[name]["mover"] - fixed[name]) / (megabytes / 1000) for name in names}
    print("  the mover's CPU seconds per GB (the runner with its workers, less what a run "
          "moving nothing costs; storescp + storescu + movescu; movescu alone):")
    for name in names:
        print(f"    {name:24s} {per_gb[name]:6.2f}"
              + (f"  (a run moving nothing: {fixed[name]:.2f} CPU s)" if fixed[name] else ""))
    if per_gb.get("dcmtk_relay"):
        for name in ("runner", "runner_through_spool", "runner_plain"):
            print(f"  {name} CPU per GB over the C relay's: "
                  f"{per_gb[name] / per_gb['dcmtk_relay']:.2f}")
    breakdown = {key: statistics.median(b[key] for b in breakdowns) for key in breakdowns[0]}
    print("  runner time (ledger, seconds from the first retrieve; medians; and how many "
          "instances went through the disk spool, not memory):")
    for key, value in breakdown.items():
        print(f"    {key:34s} {value:8.2f}")
    return {
        "studies": len(specs), "instances": expected, "megabytes": round(megabytes, 1),
        "rounds": len(measured),
        "timings": {name: {"median_seconds": round(median[name], 3),
                           "seconds": [round(v, 3) for v in seconds[name]],
                           "median_mb_per_s": round(megabytes / median[name], 1),
                           "instances": [t.instances for round_ in measured for t in round_
                                         if t.name == name],
                           "cpu_seconds": [t.cpu for round_ in measured for t in round_
                                           if t.name == name]}
                    for name in names},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "median_cpu_seconds": {name: {k: round(v, 2) for k, v in parts.items()}
                               for name, parts in cpu.items()},
        "ratios_per_round": {k: [round(v, 3) for v in vs] for k, vs in per_round.items()},
        "mover_cpu_seconds_per_gb": {k: round(v, 2) for k, v in per_gb.items()},
        "runner_fixed_cpu_seconds": {k: round(v, 2) for k, v in fixed.items() if v},
        "runner_breakdown": {k: round(v, 3) for k, v in breakdown.items()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": os.getloadavg(),
    }


if __name__ == "__main__":
    main()
