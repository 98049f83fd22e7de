"""`Ledger`: the migration's record, opened once per process; every method is thread-safe.

`record(fact)` queues any fact declared in runner.ledger.events for the one writer thread
(see batching.py), and returns at once; `record_*` methods build some facts, stamped with the
current UTC time, and record them. `flush()` waits until what was recorded is committed;
`query()` reads on the writer thread after committing what was queued before it, so reads
always see earlier writes. Use it as a context manager or call `close()`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from runner.errors import LedgerError
from runner.ledger import connection, study_status
from runner.ledger.batching import BatchWriter, WriterStats
from runner.ledger.events import (
    EventKind,
    EventRecorded,
    Fact,
    InstanceForwarded,
    InstanceQuarantined,
    InstanceReceived,
    RetrieveFinished,
    RetrievePurpose,
    RetrieveStarted,
    RunEnded,
    RunStarted,
    StudiesPlanned,
    StudyPlanned,
    StudyStatus,
    StudyStatusChanged,
    VerificationMethod,
    VerificationRecorded,
    declared,
)
from runner.ledger.schema import migrate

LEDGER_FILENAME = "ledger.duckdb"
# When set, `close` checks the status the writer keeps against the view (the suite sets it).
CHECK_STATE = "PACSMIG_CHECK_STATE"


class Ledger:
    """The migration's state in DuckDB, written by one thread; open it with `Ledger.open`."""

    def __init__(self, path: Path, writer: BatchWriter) -> None:
        self._path = path
        self._writer = writer
        self._run_id: str | None = None
        self._closed = False

    @classmethod
    def open(cls, path: Path, *, batch_size: int = 2000, batch_ms: float = 200.0) -> Ledger:
        """Open (creating or migrating) the ledger at `path`; LedgerError if it cannot be.

        Facts are committed together for up to `batch_ms` (or `batch_size` facts): a commit
        costs DuckDB about the same whatever its size, and a run records facts a few at a
        time. Measured (2,400 instances received and forwarded at 600 a second): 0.40 CPU-s
        with 50 ms batches, 0.20 with 200 ms. A crash loses at most the last batch, which a
        rerun recovers like any unrecorded step (see execute/resume.py); `flush()` commits
        at once where a step needs it (before spool files are deleted, for reads).
        """
        conn = connection.connect(path)
        try:
            migrate(conn)
        except (LedgerError, duckdb.Error) as exc:
            conn.close()
            connection.release(path)
            raise LedgerError(f"{path}: {exc}") from exc
        writer = BatchWriter(conn, path, batch_size=batch_size, batch_seconds=batch_ms / 1000)
        return cls(path, writer)

    @property
    def path(self) -> Path:
        """The ledger's file."""
        return self._path

    @property
    def run_id(self) -> str | None:
        """The run started with `start_run`, stamped on events; None before."""
        return self._run_id

    # --- recording ------------------------------------------------------------------------

    def record(self, fact: Fact) -> None:
        """Queue any declared fact (runner.ledger.events); the `record_*` methods below build
        some for you, where they add something (an id returned, the run stamped, a count
        worked out), and are not needed to record a fact."""
        if not isinstance(fact, declared()):
            raise TypeError(f"not a ledger fact: {type(fact).__name__}")
        self._writer.put(fact)

    def start_run(self, *, profile_path: str, profile_sha256: str, runner_version: str,
                  command: str) -> str:
        """Record the start of a run; later events carry its id, which is returned."""
        fact = RunStarted(profile_path=profile_path, profile_sha256=profile_sha256,
                          runner_version=runner_version, command=command)
        self.record(fact)
        self._run_id = fact.run_id
        return fact.run_id

    def end_run(self) -> None:
        """Record the end of the run started with `start_run`."""
        if self._run_id is None:
            raise LedgerError(f"{self._path}: end_run without start_run")
        self.record(RunEnded(run_id=self._run_id))

    def upsert_studies(self, studies: Iterable[StudyPlanned]) -> int:
        """Record the plan's studies in one fact (new ones start pending); returns how many."""
        fact = StudiesPlanned(studies=tuple(studies))
        self.record(fact)
        return len(fact.studies)

    def record_study_status(self, study_uid: str, status: StudyStatus,
                            reason: str | None = None) -> None:
        """Record the engine's status for a study (after `upsert_studies` planned it)."""
        self.record(StudyStatusChanged(study_uid=study_uid, status=status, reason=reason))

    def record_retrieve_started(self, *, study_uid: str, device: str,
                                purpose: RetrievePurpose) -> str:
        """Record a C-MOVE sent for a study; returns the retrieve id to tag its instances."""
        fact = RetrieveStarted(study_uid=study_uid, device=device, purpose=purpose)
        self.record(fact)
        return fact.retrieve_id

    def record_retrieve_finished(
        self, retrieve_id: str, *, final_status: int | None, category: str,
        completed: int | None = None, failed: int | None = None, warning: int | None = None,
        remaining: int | None = None, failed_uids: Sequence[str] = (), detail: str | None = None,
    ) -> None:
        """Record the final C-MOVE response (the first one recorded for a retrieve stays)."""
        self.record(RetrieveFinished(
            retrieve_id=retrieve_id, final_status=final_status, category=category,
            completed=completed, failed=failed, warning=warning, remaining=remaining,
            failed_uids=tuple(failed_uids), detail=detail))

    def record_received(
        self, *, sop_instance_uid: str, study_uid: str, series_uid: str, sop_class_uid: str,
        transfer_syntax: str, nbytes: int, spool_name: str, retrieve_id: str | None = None,
        checksum: str | None = None,
    ) -> None:
        """Record an instance safely in the spool (after its file was renamed into place)."""
        self.record(InstanceReceived(
            sop_instance_uid=sop_instance_uid, study_uid=study_uid, series_uid=series_uid,
            sop_class_uid=sop_class_uid, transfer_syntax=transfer_syntax,
            retrieve_id=retrieve_id, nbytes=nbytes, spool_name=spool_name, checksum=checksum))

    def record_forwarded(
        self, *, sop_instance_uid: str, study_uid: str, ok: bool, status: int | None,
        reason: str | None = None, dest_sop_instance_uid: str | None = None,
        transcode: tuple[str, str, str] | None = None, rules_fired: Sequence[int] = (),
    ) -> None:
        """Record one C-STORE attempt; `study_uid` is the source study, as received;
        `transcode` (from syntax, to syntax, why) when it went in another syntax; `rules_fired`
        the indexes of the morphing rules that changed it."""
        source, sent, why = transcode if transcode is not None else (None, None, None)
        self.record(InstanceForwarded(
            sop_instance_uid=sop_instance_uid, study_uid=study_uid, ok=ok, status=status,
            reason=reason, dest_sop_instance_uid=dest_sop_instance_uid,
            transcoded_from=source, transcoded_to=sent, transcode_reason=why,
            rules_fired=tuple(rules_fired)))

    def record_quarantined(self, *, sop_instance_uid: str, study_uid: str, reason: str) -> None:
        """Record that an instance is set aside instead of forwarded."""
        self.record(InstanceQuarantined(
            sop_instance_uid=sop_instance_uid, study_uid=study_uid, reason=reason))

    def record_verification(
        self, *, study_uid: str, method: VerificationMethod, expected: int | None, found: int,
        ok: bool, missing: int | None = None, missing_uids: Sequence[str] = (),
        confirmed_uids: Sequence[str] = (), detail: str | None = None,
    ) -> None:
        """Record a check at the destination; `confirmed_uids` are source SOP Instance UIDs."""
        if missing is None:
            missing = max(len(missing_uids), (expected or 0) - found)
        self.record(VerificationRecorded(
            study_uid=study_uid, method=method, expected=expected, found=found,
            missing=missing, ok=ok, missing_uids=tuple(missing_uids),
            confirmed_uids=tuple(confirmed_uids), detail=detail))

    def record_event(
        self, kind: EventKind | str, *, device: str | None = None, study_uid: str | None = None,
        detail: Mapping[str, object] | None = None, nbytes: int | None = None,
    ) -> str:
        """Record anything else (device down/up, stall, dead time, re-date...); returns its id."""
        fact = EventRecorded(kind=str(kind), run_id=self._run_id, device=device,
                             study_uid=study_uid, detail_json=EventRecorded.encode_detail(detail),
                             nbytes=nbytes)
        self.record(fact)
        return fact.event_id

    # --- waiting and reading --------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every fact recorded before this call is committed."""
        self._writer.flush(timeout)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of `sql`, run on the writer thread after what was recorded before it."""
        return self._writer.read(sql, params)

    def stats(self) -> WriterStats:
        """What the writer has committed so far (transactions, facts, upsert batches)."""
        return self._writer.stats()

    def close(self) -> None:
        """Commit what is queued and close the file; LedgerError if the writer had failed."""
        if self._closed:
            return
        self._closed = True
        try:
            drift = self._drift() if os.environ.get(CHECK_STATE) else []
            self._writer.stop()
        finally:
            connection.release(self._path)
        if drift:
            raise LedgerError(f"{self._path}: study_status differs from the reconciliation "
                              f"view (first rows of each side: {drift})")

    def _drift(self) -> list[tuple[Any, ...]]:
        """Where the status the writer keeps differs from the view (PACSMIG_CHECK_STATE)."""
        try:
            return self.query(study_status.DRIFT)
        except LedgerError:
            return []  # the writer failed: stop() raises that

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
            return
        with contextlib.suppress(LedgerError):  # the exception on its way out is the one
            self.close()
