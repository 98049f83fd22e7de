"""The priority lane under a busy queue: how long from an HL7 order to the first retrieve of
the patient's priors, and to every prior verified, against when the migration's own order
reaches them without the lane, side by side in one run.

    .venv/bin/python benchmarks/priority_latency.py [--studies 60 --rounds 3]

A simulated source (`runner.sim.qrscp`, each C-MOVE held 0.2 s: a busy device) holds
`--studies` studies, oldest first; the newest three are one patient's, so the background
queue reaches them last. `pacsmig run` migrates them into a real Orthanc under a throttle of
two retrieves at once and 0.1 s between starts. Each round runs twice (order alternated):
(a) with the lane: once a sixth of the studies are at the destination, python-hl7's MLLP
client sends an ORM^O01 for the patient to `priority.hl7`; (b) without an order, the moment
a sixth is there is noted the same way. Reported per round and as medians: the seconds from
that moment to the patient's first retrieve and to all three verified, both ways, and the
ratio without/with (how many times sooner). Writes JSON to
benchmarks/results/priority_latency.json. Loopback only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from runner.commands.census import build_plan  # noqa: E402
from runner.dicom.peer import Peer  # noqa: E402
from runner.execute.run import run_migration  # noqa: E402
from runner.morph.loaded import load_profile  # noqa: E402
from runner.sim.generate import StudySpec, synthetic_archive  # noqa: E402
from runner.sim.qrscp import Behaviour, MoveDirective, QRServer  # noqa: E402
from runner.sim.ris import SimRis  # noqa: E402
from tests.peers import OrthancProcess, free_port  # noqa: E402
from tests.profiles import profile_data, write_profile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "priority_latency.json"
PATIENT = "BENCH-PRIORS"
MOVE_SECONDS = 0.2


class Busy(Behaviour):
    """Every retrieve held a while before its instances flow: a device at work."""

    def before_move(self, spec: StudySpec) -> MoveDirective:
        return MoveDirective(delay_seconds=MOVE_SECONDS)


def archive(count: int) -> list[StudySpec]:
    specs = synthetic_archive("prio-bench", count, date(2012, 1, 1), date(2024, 1, 1),
                              instances_per_series=2)
    return [dataclasses.replace(s, patient_id=PATIENT) if i >= count - 3 else s
            for i, s in enumerate(specs)]


def one_run(work: Path, specs: list[StudySpec], with_order: bool) -> dict[str, float]:
    """One migration; seconds from the marked moment to the patient's first retrieve and to
    all its studies verified."""
    source = QRServer("SIMSRC", specs, {}, behaviour=Busy()).start()
    listener = free_port()  # after the source has its port: never the same
    source.destinations["PACSMIG"] = ("127.0.0.1", listener)
    dest = OrthancProcess(work / "orthanc", aet="DEST").start()
    hl7_port = free_port()
    marked: list[datetime] = []
    try:
        data = profile_data(work, [("sim", Peer("SIMSRC", "127.0.0.1", source.port))],
                            dest.peer, listener, throttles={"busy": {
                                "max_concurrent_retrieves": 2, "min_concurrent_retrieves": 1,
                                "delay_seconds": "0.1"}},
                            priority={"hl7": {"host": "127.0.0.1", "port": hl7_port}})
        loaded = load_profile(write_profile(work, data))
        plan = build_plan(loaded, None)

        def ready() -> bool:
            if dest.study_count() < len(specs) // 6:
                return False
            marked.append(datetime.now(UTC))
            return with_order
        ris = SimRis("127.0.0.1", hl7_port, PATIENT, ready).start()
        runner = threading.Thread(target=run_migration,
                                  args=(loaded, plan, None, lambda _: None, False))
        runner.start()
        runner.join()
        ris.stop()
    finally:
        source.stop()
        dest.stop()
    if with_order and ris.ack != "AA":
        raise RuntimeError(f"the order was not kept: {ris.ack or ris.problem}")
    theirs = [str(s.study_uid) for s in specs if s.patient_id == PATIENT]
    with duckdb.connect(str(work / "reports" / "ledger.duckdb"), read_only=True) as conn:
        first = conn.execute("SELECT min(started_at) FROM retrieves WHERE study_uid IN"
                             " (SELECT unnest(?::VARCHAR[]))", [theirs]).fetchone()
        done = conn.execute("SELECT max(verified_at) FROM verifications WHERE ok AND"
                            " study_uid IN (SELECT unnest(?::VARCHAR[]))", [theirs]).fetchone()
    assert first is not None and done is not None
    mark = (ris.sent_at if with_order and ris.sent_at else marked[0])
    return {"to_first_retrieve": (first[0] - mark).total_seconds(),
            "to_verified": (done[0] - mark).total_seconds()}


def main() -> None:
    """Parse the arguments, run the rounds, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    specs = archive(args.studies)
    rounds: list[dict[str, Any]] = []
    for number in range(args.rounds):
        result: dict[str, Any] = {}
        order = (True, False) if number % 2 == 0 else (False, True)
        for with_order in order:
            work = Path(tempfile.mkdtemp(prefix="prio-bench-"))
            result["lane" if with_order else "background"] = one_run(work, specs, with_order)
        result["ratio_first_retrieve"] = (result["background"]["to_first_retrieve"]
                                          / max(result["lane"]["to_first_retrieve"], 1e-3))
        result["ratio_verified"] = (result["background"]["to_verified"]
                                    / max(result["lane"]["to_verified"], 1e-3))
        rounds.append(result)
        print(f"round {number + 1}: lane {result['lane']['to_first_retrieve']:.2f} s to first "
              f"retrieve, {result['lane']['to_verified']:.2f} s to verified; background "
              f"{result['background']['to_first_retrieve']:.2f} s / "
              f"{result['background']['to_verified']:.2f} s")
    summary = {key: statistics.median(r[key] for r in rounds)
               for key in ("ratio_first_retrieve", "ratio_verified")}
    summary |= {f"{way}_{what}": statistics.median(r[way][what] for r in rounds)
                for way in ("lane", "background") for what in ("to_first_retrieve",
                                                               "to_verified")}
    for key, value in summary.items():
        print(f"{key:32} {value:8.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"studies": args.studies, "rounds": rounds,
                                   "medians": summary,
                                   "when": time.strftime("%Y-%m-%d %H:%M")}, indent=2))


if __name__ == "__main__":
    main()
