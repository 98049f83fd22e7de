"""The writer thread: the only user of the ledger's DuckDB connection once it is open.

It drains one queue that holds facts and control requests (flush, read, stop), in order.
Facts are gathered into a batch of up to `batch_size` or until `batch_seconds` after the
first one, and committed in one explicit transaction. A control request first commits the
facts queued before it, so a flush or a read sees everything recorded before it was asked.

A batch is first written on the fast path (plain keyed INSERTs); if a key is there already
(an instance received or confirmed again, a fact written twice), it is rolled back and
written again on the upsert path: the batch's keys looked up in the instance tables' and the
per-study state's indexes (flat), `ON CONFLICT` for the per-study tables (runner.ledger.tables).

Fail-stop: if a batch cannot be written, it is rolled back, the error is kept, and every later
call (record, flush, query, close) raises it as LedgerError; facts queued after the failure
are dropped. Nothing is half-written, and a rerun resumes from what was committed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from runner.errors import LedgerError
from runner.ledger.apply import write_batch
from runner.ledger.events import Fact

Rows = list[tuple[Any, ...]]
T = TypeVar("T")

# Producers block (back-pressure) once this many items wait for the writer.
QUEUE_LIMIT = 100_000
_POLL_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class WriterStats:
    """What the writer has committed so far."""

    transactions: int
    facts: int
    upsert_batches: int


@dataclass(frozen=True, slots=True)
class _Flush:
    done: Future[None]


@dataclass(frozen=True, slots=True)
class _Read:
    sql: str
    params: Sequence[object]
    done: Future[Rows]


@dataclass(frozen=True, slots=True)
class _Stop:
    done: Future[None]


_Control = _Flush | _Read | _Stop
_Item = Fact | _Control


class BatchWriter:
    """Owns the connection on its own thread; see the module docstring for the contract."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path, *, batch_size: int,
                 batch_seconds: float) -> None:
        if batch_size < 1 or batch_seconds < 0:
            raise ValueError("batch_size must be >= 1 and batch_seconds >= 0")
        self._conn = conn
        self._path = path
        self._batch_size = batch_size
        self._batch_seconds = batch_seconds
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._error: LedgerError | None = None
        self._stopping = False
        self._counts = [0, 0, 0]  # transactions, facts, upsert batches
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    # --- producer side (any thread) -------------------------------------------------------

    def put(self, fact: Fact) -> None:
        """Queue a fact; blocks while the queue is full; raises if the writer failed."""
        if self._stopping:
            raise LedgerError(f"{self._path}: the ledger is closed")
        self._put(fact)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every fact queued before this call is committed."""
        done: Future[None] = Future()
        self._put(_Flush(done))
        self._wait(done, timeout)

    def read(self, sql: str, params: Sequence[object], timeout: float | None = None) -> Rows:
        """Run `sql` on the writer thread after committing what was queued before it."""
        done: Future[Rows] = Future()
        self._put(_Read(sql, params, done))
        return self._wait(done, timeout)

    def stop(self) -> None:
        """Commit what is queued, close the connection, end the thread; raise a kept error."""
        self._stopping = True
        done: Future[None] = Future()
        self._put(_Stop(done))
        try:
            self._wait(done, None)
        finally:
            self._thread.join()

    def stats(self) -> WriterStats:
        """Counts of committed transactions, facts, and batches that took the upsert path."""
        return WriterStats(*self._counts)

    def _put(self, item: _Item) -> None:
        while True:
            self._raise_if_failed()
            if not self._thread.is_alive():
                raise LedgerError(f"{self._path}: the ledger writer has stopped")
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _wait(self, done: Future[T], timeout: float | None) -> T:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            try:
                return done.result(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                pass
            if not self._thread.is_alive() and not done.done():
                raise LedgerError(f"{self._path}: the ledger writer has stopped")
            if time.monotonic() >= deadline:
                raise LedgerError(f"{self._path}: the ledger writer did not answer in time")

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._failure()

    def _failure(self) -> LedgerError:
        failure = LedgerError(str(self._error))
        failure.__cause__ = self._error
        return failure

    # --- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        stop: _Stop | None = None
        try:
            while stop is None:
                facts, control = self._collect()
                self._write(facts)
                stop = self._serve(control)
        except Exception as exc:  # a defect in the loop itself: keep it, answer no more
            self._fail([], exc)
        finally:
            self._conn.close()
            if stop is not None:
                self._resolve(stop.done, None)

    def _collect(self) -> tuple[list[Fact], _Control | None]:
        facts: list[Fact] = []
        item: _Item | None = self._queue.get()
        deadline = time.monotonic() + self._batch_seconds
        while item is not None:
            if isinstance(item, _Flush | _Read | _Stop):
                return facts, item
            facts.append(item)
            if len(facts) >= self._batch_size:
                break
            item = self._next(deadline)
        return facts, None

    def _next(self, deadline: float) -> _Item | None:
        remaining = deadline - time.monotonic()
        try:
            if remaining > 0:
                return self._queue.get(timeout=remaining)
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def _write(self, facts: list[Fact]) -> None:
        if not facts or self._error is not None:
            return
        try:
            self._commit(facts, upsert=False)
        except duckdb.ConstraintException:
            self._write_as_upserts(facts)
        except Exception as exc:
            self._fail(facts, exc)

    def _write_as_upserts(self, facts: list[Fact]) -> None:
        """An instance seen before, or a fact written before: the keys looked up (flat), the
        per-study tables' upsert clauses."""
        try:
            self._commit(facts, upsert=True)
            self._counts[2] += 1
        except Exception as exc:
            self._fail(facts, exc)

    def _commit(self, facts: list[Fact], *, upsert: bool) -> None:
        self._conn.execute("BEGIN TRANSACTION")
        try:
            write_batch(self._conn, facts, upsert)
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._counts[0] += 1
        self._counts[1] += len(facts)

    def _rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):  # DuckDB may have ended it already
            self._conn.execute("ROLLBACK")

    def _fail(self, facts: list[Fact], exc: Exception) -> None:
        error = LedgerError(
            f"{self._path}: writing a batch of {len(facts)} facts failed and was rolled back; "
            f"the ledger takes no more writes: {type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
        self._error = error

    def _serve(self, control: _Control | None) -> _Stop | None:
        if isinstance(control, _Stop):
            return control
        if isinstance(control, _Flush):
            self._resolve(control.done, None)
        elif isinstance(control, _Read):
            self._answer(control)
        return None

    def _answer(self, read: _Read) -> None:
        if self._error is not None:
            read.done.set_exception(self._failure())
            return
        try:
            rows = self._conn.execute(read.sql, list(read.params)).fetchall()
        except duckdb.Error as exc:
            failure = LedgerError(f"{self._path}: ledger query failed: {exc}")
            failure.__cause__ = exc
            read.done.set_exception(failure)
            return
        read.done.set_result(rows)

    def _resolve(self, done: Future[None], value: None) -> None:
        if self._error is not None:
            done.set_exception(self._failure())
        else:
            done.set_result(value)
