"""Ledger scaling: the writer's cost per instance, the read models' and the report's time and
the file's bytes per instance, against synthetic ledgers of 10^4 and 10^7 instances; the
large/small ratio should stay near 1 (flat cost) but for the report (time per row).

Run: .venv/bin/python benchmarks/ledger_scale.py [--sizes 10000 10000000] [--stream 20000]

The synthetic ledgers are built by SQL (range + hash: scattered, realistic-length UIDs), not by
the writer: every study retrieved, received, forwarded, checked and verified one instance at a
time, but the last OPEN_STUDIES, forwarded and not yet checked (a run's open work); the
per-study state is then filled as migration 7 fills it for an older ledger (timed: "fill").
The stream then goes through the real writer: for each new instance a `record_received`, and
a `record_forwarded` for the instance 500 places behind (a forwarder trailing the listener),
all through the queue, batches and transactions, ending with a flush. It also times receipts
of instances already in the ledger (a repair or a resumed study: new facts of instances
known, whose keys the per-study state looks up) and the exact replay of facts already
written (a producer recording the same fact twice), both of whole studies chosen at random
among the ledger's: both take the upsert path, the batch's keys looked up in the indexes.
The report is `pacsmig report`'s SQL over the whole ledger and its files (CSV, Parquet), per
instance row; the file's size is counted after the writer closed it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from runner.execute.resume import INSTANCES_LEFT, STUDIES_LEFT
from runner.execute.status import read_status
from runner.ledger import InstanceReceived, Ledger, study_state, study_status
from runner.ledger import queries as q
from runner.ledger.events import utc_now
from runner.ledger.tables import hashed_key
from runner.report.files import export_tables
from runner.report.scope import ReportScope
from runner.report.source import LedgerReader, sql_text

ROOT = "1.2.826.0.1.3680043.8.498."
INSTANCES_PER_STUDY = 200
FORWARD_LAG = 500
WARMUP = 20_000  # instances streamed first: a reopened ledger pages its index in
REPLAY = 1_000
OPEN_STUDIES = 25
ROUNDS = 3
KEEP_FROM = 1_000_000  # --keep keeps ledgers of this many instances or more


@dataclass(frozen=True)
class Figures:
    """What was measured against one ledger size."""

    size: int
    build_s: float
    fill_s: float
    stream_us: float
    rereceipt_us: float
    replay_us: float
    queries_ms: dict[str, float]
    report_us: float
    bytes_per_instance: float


def build(path: Path, size: int) -> tuple[float, float]:
    """Create a ledger of `size` instances by SQL; seconds to build and to fill the state."""
    Ledger.open(path).close()
    started = time.perf_counter()
    conn = duckdb.connect(str(path))
    studies = max(1, size // INSTANCES_PER_STUDY)
    for statement in facts_sql(size, studies):
        conn.execute(statement)
    built = time.perf_counter()
    conn.execute("DELETE FROM study_state")
    conn.execute("DELETE FROM study_status")
    for statement in (*study_state.FILL, *study_status.FILL):
        conn.execute(statement)
    conn.close()
    return built - started, time.perf_counter() - built


def facts_sql(size: int, studies: int) -> list[str]:
    """The statements that write the facts of a ledger of `size` instances."""
    sop = f"'{ROOT}' || hash(i)::VARCHAR"
    study = f"'{ROOT}9.' || (i // {INSTANCES_PER_STUDY})::VARCHAR"
    closed = f"i // {INSTANCES_PER_STUDY} < {max(0, studies - OPEN_STUDIES)}"
    return [f"""INSERT INTO studies (study_uid, study_date, modality, tier, device,
        planned_instances, planned_mb, phase_index, order_index, planned_at, status,
        updated_at) SELECT '{ROOT}9.' || i::VARCHAR, DATE '2015-01-01' + (i % 3000)::INTEGER,
        'CT', 'local', 'pacs', {INSTANCES_PER_STUDY}, 100.0, 0, i, now(), 'active', now()
        FROM range({studies}) t(i)""",
        f"""INSERT INTO retrieves (retrieve_id, study_uid, device, purpose,
        started_at, ended_at, final_status, category, completed, failed, warning, remaining)
        SELECT 'r' || i::VARCHAR, '{ROOT}9.' || i::VARCHAR, 'pacs', 'migrate', now(), now(),
        0, 'success', {INSTANCES_PER_STUDY}, 0, 0, 0 FROM range({studies}) t(i)""",
        f"""INSERT INTO receipts (sop_instance_uid, study_uid, series_uid,
        sop_class_uid, transfer_syntax, retrieve_id, received_at, bytes, spool_name, fact_key)
        SELECT *, {hashed_key('s', 'ts')} FROM (SELECT {sop} AS s, {study}, {study} || '.1',
        '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', 'r' || (i // {INSTANCES_PER_STUDY}),
        now() - INTERVAL 1 DAY AS ts, 524288, md5(i::VARCHAR) FROM range({size}) t(i))""",
        f"""INSERT INTO forwards (sop_instance_uid, attempted_at, study_uid, ok,
        status, reason, dest_sop_instance_uid, fact_key) SELECT *, {hashed_key('s', 'ts')}
        FROM (SELECT {sop} AS s, now() - INTERVAL 20 HOUR AS ts,
        {study}, true, 0, NULL, NULL FROM range({size}) t(i))""",
        f"""INSERT INTO confirmations SELECT *, {hashed_key('s', 'ts')} FROM (SELECT
        {sop} AS s, now() - INTERVAL 10 HOUR AS ts, {study}, 'image_find'
        FROM range({size}) t(i) WHERE {closed})""",
        f"""INSERT INTO verifications (study_uid, verified_at, method, expected, found,
        missing, missing_uids, ok) SELECT '{ROOT}9.' || i::VARCHAR, now() - INTERVAL 10 HOUR,
        'image_find', {INSTANCES_PER_STUDY}, {INSTANCES_PER_STUDY}, 0, [], true
        FROM range({studies}) t(i) WHERE i < {max(0, studies - OPEN_STUDIES)}"""]


def stream(ledger: Ledger, uids: list[str]) -> float:
    """Record received + forwarded for `uids` through the writer; seconds until committed."""
    started = time.perf_counter()
    for n, uid in enumerate(uids):
        ledger.record_received(sop_instance_uid=uid, study_uid=f"{ROOT}7.{n // 200}",
                               series_uid=f"{ROOT}7.{n // 200}.1",
                               sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                               transfer_syntax="1.2.840.10008.1.2.1", nbytes=524288,
                               spool_name=uid, retrieve_id="stream")
        if n >= FORWARD_LAG:
            forward(ledger, uids[n - FORWARD_LAG], n - FORWARD_LAG)
    for n in range(max(0, len(uids) - FORWARD_LAG), len(uids)):
        forward(ledger, uids[n], n)
    ledger.flush()
    return time.perf_counter() - started


def forward(ledger: Ledger, uid: str, n: int) -> None:
    """Record a successful C-STORE of the n-th streamed instance."""
    ledger.record_forwarded(sop_instance_uid=uid, study_uid=f"{ROOT}7.{n // 200}", ok=True,
                            status=0)


def new_uids(count: int, rng: random.Random) -> list[str]:
    """Fresh, scattered SOP Instance UIDs."""
    return [f"{ROOT}{rng.getrandbits(62)}" for _ in range(count)]


def time_queries(ledger: Ledger, some_study: str) -> dict[str, float]:
    """Median milliseconds of each read model over three runs."""
    reads: dict[str, Callable[[], object]] = {
        "studies_to_do": lambda: q.studies_to_do(ledger),
        "unforwarded_instances": lambda: q.unforwarded_instances(ledger),
        "unverified_instances(1 study)": lambda: q.unverified_instances(ledger, some_study),
        "unverified_counts": lambda: q.unverified_counts(ledger),
        "status_summary": lambda: q.status_summary(ledger),
        "status (every read)": lambda: read_status(ledger),
        "reconciliation view by status": lambda: ledger.query(_HEADLINE),
        "resume: studies left": lambda: ledger.query(STUDIES_LEFT),
        "resume: instances left": lambda: ledger.query(INSTANCES_LEFT),
    }
    return {name: median_ms(read) for name, read in reads.items()}


# the reconciliation view's headline (the report's; status reads the kept study_status)
_HEADLINE = "SELECT status, count(*) FROM reconciliation GROUP BY status"


def median_ms(read: Callable[[], object]) -> float:
    """Median wall time of three calls, in milliseconds."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        read()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


# A repair, a resumed study or a producer's replay records facts of whole studies (a study's
# instances are retrieved together): receipts of REPLAY // INSTANCES_PER_STUDY studies chosen
# at random among the ledger's, each study's instances in the order received.
_SOME_STUDIES = f"""
SELECT sop_instance_uid, study_uid, received_at FROM receipts
WHERE study_uid IN (SELECT study_uid FROM study_state
                    USING SAMPLE {max(1, REPLAY // INSTANCES_PER_STUDY)} ROWS)
ORDER BY study_uid, received_at"""


def rereceive(ledger: Ledger) -> float:
    """Microseconds per instance to record new receipts of instances already recorded."""
    rows = ledger.query(_SOME_STUDIES)
    facts = [receipt(uid, study_uid, utc_now()) for uid, study_uid, _ in rows]
    return timed_us(ledger, facts)


def replay(ledger: Ledger) -> float:
    """Microseconds per instance to record, again, receipts already written (upsert path)."""
    rows = ledger.query(_SOME_STUDIES)
    return timed_us(ledger, [receipt(uid, study_uid, at) for uid, study_uid, at in rows])


def receipt(uid: str, study_uid: str, at: datetime) -> InstanceReceived:
    """A receipt fact for an instance, at a given time."""
    return InstanceReceived(sop_instance_uid=uid, study_uid=study_uid, series_uid="x",
                            sop_class_uid="x", transfer_syntax="x", retrieve_id=None,
                            nbytes=1, spool_name="again", at=at)


def timed_us(ledger: Ledger, facts: list[InstanceReceived]) -> float:
    """Microseconds per fact to record `facts` and flush them."""
    started = time.perf_counter()
    for fact in facts:
        ledger.record(fact)
    ledger.flush()
    return (time.perf_counter() - started) / max(1, len(facts)) * 1e6


def report_seconds(path: Path, folder: Path) -> float:
    """Seconds to run the report's queries and write its files (CSV, Parquet) for the whole
    ledger, read-only as `pacsmig report` does."""
    started = time.perf_counter()
    with LedgerReader.open(path, "UTC") as reader:
        reader.set_scope(ReportScope(), "site")
        for name in ("headline", "status_counts", "totals", "failures", "work", "series"):
            reader.query(sql_text(name))
        export_tables(reader, folder, "")
    return time.perf_counter() - started


def measure(sizes: list[int], stream_size: int, folder: Path,
            report: bool = True) -> list[Figures]:
    """Build a ledger of each size (unless kept) and measure the writer and the reads against
    each, in turns (ROUNDS of each measure, sizes alternating: the machine's load changes
    by the minute), medians."""
    paths = [folder / f"ledger-{size}.duckdb" for size in sizes]
    for path, size in zip(paths, sizes, strict=True):
        if size < KEEP_FROM:  # cheap to build, and a kept one grows by every stream
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".wal").unlink(missing_ok=True)
    built = [(float("nan"), float("nan")) if path.exists() else build(path, size)
             for path, size in zip(paths, sizes, strict=True)]  # --keep: built before
    samples: list[dict[str, list[float]]] = [defaultdict(list) for _ in sizes]
    rngs = [random.Random(size) for size in sizes]
    ledgers = [Ledger.open(path) for path in paths]
    try:
        for ledger, rng in zip(ledgers, rngs, strict=True):
            stream(ledger, new_uids(WARMUP, rng))
        for _ in range(ROUNDS):
            for ledger, rng, got in zip(ledgers, rngs, samples, strict=True):
                measure_round(ledger, rng, stream_size // ROUNDS, got)
        counts = [int(ledger.query("SELECT count(*) FROM received_instances")[0][0])
                  for ledger in ledgers]
    finally:
        for ledger in ledgers:
            ledger.close()
    for _ in range(2 if report else 0):
        for path, got, count in zip(paths, samples, counts, strict=True):
            got["report"].append(report_seconds(path, folder) / count * 1e6)
    return [figures(size, build_fill, got, path.stat().st_size / count)
            for size, build_fill, got, path, count
            in zip(sizes, built, samples, paths, counts, strict=True)]


def measure_round(ledger: Ledger, rng: random.Random, stream_size: int,
                  got: dict[str, list[float]]) -> None:
    """One round of every measure against one ledger, added to `got`."""
    got["stream"].append(stream(ledger, new_uids(stream_size, rng)) / stream_size * 1e6)
    for name, ms in time_queries(ledger, f"{ROOT}9.0").items():
        got[name].append(ms)
    got["rereceipt"].append(rereceive(ledger))
    got["replay"].append(replay(ledger))


def figures(size: int, build_fill: tuple[float, float], got: dict[str, list[float]],
            bytes_per_instance: float) -> Figures:
    """The medians of what was measured against one ledger."""
    med = {name: statistics.median(values) for name, values in got.items()}
    queries = {name: med[name] for name in got
               if name not in ("stream", "rereceipt", "replay", "report")}
    return Figures(size, *build_fill, med["stream"], med["rereceipt"], med["replay"],
                   queries, med.get("report", float("nan")), bytes_per_instance)


def report(small: Figures, large: Figures, stream_size: int) -> None:
    """Print the figures side by side with the large/small ratio."""
    print(f"duckdb {duckdb.__version__}; stream of {stream_size} instances"
          f" (received + forwarded each) through the writer")
    print(f"{'':34}{small.size:>12,}{large.size:>12,}{'ratio':>8}")
    print(f"{'build by SQL (s)':34}{small.build_s:12.2f}{large.build_s:12.2f}")
    print(f"{'fill the state, as migration 7 (s)':34}{small.fill_s:12.2f}{large.fill_s:12.2f}")
    rows = [("writer, us per instance", small.stream_us, large.stream_us),
            ("re-receipt, us per instance", small.rereceipt_us, large.rereceipt_us),
            ("exact replay (upsert), us per fact", small.replay_us, large.replay_us)]
    rows += [(f"{name} (ms)", small.queries_ms[name], large.queries_ms[name])
             for name in small.queries_ms]
    rows += [("report, us per instance row", small.report_us, large.report_us),
             ("ledger file, bytes per instance", small.bytes_per_instance,
              large.bytes_per_instance)]
    for name, a, b in rows:
        print(f"{name:34}{a:12.2f}{b:12.2f}{b / a:8.2f}")


def main() -> None:
    """Measure the sizes given (default 10^4 and 10^7) and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 10_000_000])
    parser.add_argument("--stream", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the ledgers in this folder and keep those of a million "
                             "instances or more; a later run with the same folder measures "
                             "them again without building them")
    parser.add_argument("--no-report", action="store_true",
                        help="skip the report's time (at 10^8 DuckDB spills tens of GB of "
                             "temporary files for it)")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        small, large = measure(args.sizes, args.stream, args.keep, not args.no_report)
        report(small, large, args.stream)
        return
    with tempfile.TemporaryDirectory(prefix="ledger-scale-") as folder:
        small, large = measure(args.sizes, args.stream, Path(folder), not args.no_report)
        report(small, large, args.stream)


if __name__ == "__main__":
    main()
