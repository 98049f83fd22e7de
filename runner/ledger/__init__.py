"""The migration's ledger: DuckDB schema and migrations, the one writer, the read models.

File: `<reports.dir>/ledger.duckdb` (and its write-ahead log `ledger.duckdb.wal`).
Modules: `events` (the facts, each declared once: a frozen dataclass with how it is
written), `tables` (the tools they write with), `schema` (DDL, versions, views), `apply`
(a batch of facts written kind by kind), `study_state` (the per-study state the writer keeps
with each batch, which status, the reconciliation and resume read), `batching` (the writer
thread), `writer` (`Ledger`, the public face), `queries` (read models), `connection`
(opening the file).

Time: every timestamp is TIMESTAMPTZ, stored and read back in UTC (aware datetimes).
Privacy: no patient name, ID or birth date is ever stored; studies are keyed by UID.

Idempotence: every fact has a natural key (instance facts: SOP Instance UID + time; studies:
Study Instance UID; runs, retrieves and events: an id made by the producer), and writing the
same fact again leaves the same state. A receipt, a forward attempt, a confirmation is a new
row; the `instances` view describes each instance by its latest facts, so the later fact
wins by its own timestamp, not by arrival: a successful forward is never undone by a later
failed attempt, an older receipt never replaces a newer spool file, an older study status
never overwrites a newer one. So a run killed at any moment can simply be run again.

Crash safety and recovery. Each batch is one DuckDB transaction; DuckDB writes it to the
WAL before COMMIT returns, so once `flush()` has returned, the facts survive a crash of the
process (SIGKILL included: tests/unit/test_ledger_crash.py kills a writer mid-stream).
Recovery needs no tool and no flag: the next `Ledger.open` replays the WAL into the database
file (DuckDB does it on connect) and checkpoints it later. Facts still in the queue when the
process died are lost, by design: each was recorded after its side effect, so the rerun
finds the instance received but not forwarded (re-forwarded; a duplicate C-STORE is
harmless), or not received at all (retrieved again). Only if the file itself is damaged
(disk failure) does `open` raise LedgerError naming the file; keep the ledger on a
journaled file system, and copy it (closed) before experiments.

One process only: DuckDB locks the file; a second process gets LedgerError ("another pacsmig
may be running"); `pacsmig status` must therefore run when no `run` holds the ledger, or be
served by the running process.
"""

from __future__ import annotations

from runner.ledger.batching import WriterStats as WriterStats

# every fact, value and word of runner.ledger.events (the facts are declared there, once)
from runner.ledger.events import *  # noqa: F403
from runner.ledger.schema import SCHEMA_VERSION as SCHEMA_VERSION
from runner.ledger.writer import LEDGER_FILENAME as LEDGER_FILENAME
from runner.ledger.writer import Ledger as Ledger
