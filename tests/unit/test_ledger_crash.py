"""Crash safety: a writer killed with SIGKILL mid-stream leaves a ledger that opens again
with every batch it had seen committed (recovered from DuckDB's write-ahead log)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from runner.ledger import Ledger

WRITER = """
import sys
from pathlib import Path
from runner.ledger import Ledger
ledger = Ledger.open(Path(sys.argv[1]), batch_size=100, batch_ms=2)
round_ = sys.argv[2]
batch = 0
while True:
    for i in range(200):
        uid = f"1.2.{round_}.{batch}.{i}"
        ledger.record_received(sop_instance_uid=uid, study_uid=f"1.2.{round_}.{batch}",
                               series_uid="1.2.9", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                               transfer_syntax="1.2.840.10008.1.2.1", nbytes=512,
                               spool_name=uid)
        ledger.record_forwarded(sop_instance_uid=uid, study_uid=f"1.2.{round_}.{batch}",
                                ok=True, status=0)
    ledger.flush()
    print(batch, flush=True)
    batch += 1
"""

FLUSHES_BEFORE_KILL = 15
ROUNDS = 3


def write_until_killed(path: Path, round_: int) -> int:
    """Run a writer process, SIGKILL it after some flushes; the last batch it saw committed."""
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(round_)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    last = -1
    try:
        while last < FLUSHES_BEFORE_KILL:
            line = child.stdout.readline()
            assert line, "the writer process ended before it was killed"
            last = int(line)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return last


def test_kill_9_during_writes_leaves_a_readable_ledger_with_committed_batches(
        tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    wal = path.with_name(path.name + ".wal")
    for round_ in range(ROUNDS):
        last = write_until_killed(path, round_)
        assert wal.exists(), "the kill should leave work in the WAL to recover"
        with Ledger.open(path) as ledger:
            got = ledger.query(
                "SELECT count(*), count(*) FILTER (WHERE state = 'forwarded') FROM instances"
                " WHERE study_uid LIKE ?", [f"1.2.{round_}.%"])[0]
            missing = ledger.query(
                "SELECT count(*) FROM (SELECT unnest(?::VARCHAR[]) AS uid)"
                " WHERE uid NOT IN (SELECT sop_instance_uid FROM receipts)",
                [[f"1.2.{round_}.{b}.{i}" for b in range(last + 1) for i in range(200)]])
        assert got[0] >= (last + 1) * 200
        assert got[1] >= (last + 1) * 200
        assert missing == [(0,)]
