"""Opening the ledger's DuckDB file: folder creation, lock and corruption errors, UTC session.

DuckDB lets one process hold a database file read-write; a second process gets a lock error,
which is reported as "another pacsmig may be running". Inside one process DuckDB would share
the database between connections, so this module also refuses a second open of the same file
while the first is still open: there must be exactly one writer.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from runner.errors import LedgerError

_open_paths: set[Path] = set()
_open_paths_lock = threading.Lock()


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection to the ledger at `path`, creating its folder and file."""
    _claim(path)
    try:
        return _connect_claimed(path)
    except BaseException:
        release(path)
        raise


def release(path: Path) -> None:
    """Forget that `path` is open in this process (after its connection was closed)."""
    with _open_paths_lock:
        _open_paths.discard(path.resolve())


def _claim(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot create the ledger's folder: {exc}") from exc
    key = path.resolve()
    with _open_paths_lock:
        if key in _open_paths:
            raise LedgerError(f"{path}: the ledger is already open in this process")
        _open_paths.add(key)


def _connect_claimed(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        conn = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise _open_error(path, exc) from exc
    try:
        conn.execute("SET TimeZone = 'UTC'")
    except duckdb.Error as exc:
        conn.close()
        raise LedgerError(f"{path}: cannot set the ledger session to UTC: {exc}") from exc
    return conn


def _open_error(path: Path, exc: duckdb.Error) -> LedgerError:
    text = str(exc)
    if "lock" in text.lower():
        return LedgerError(
            f"{path}: the ledger is locked by another process; another pacsmig may be "
            f"running on this migration ({text})"
        )
    return LedgerError(f"{path}: cannot open the ledger; is it corrupt or not a ledger? ({text})")
