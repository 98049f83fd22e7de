"""The ledger opened read-only for reports, and the report SQL files run against it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import duckdb

from runner.errors import LedgerError
from runner.ledger import SCHEMA_VERSION
from runner.report.scope import ReportScope

T = TypeVar("T")


def sql_text(name: str) -> str:
    """The text of sql/<name>.sql, shipped with the package."""
    return (resources.files("runner.report") / "sql" / f"{name}.sql").read_text("utf-8")


class LedgerReader:
    """A read-only connection to a closed ledger, in the site's time zone, with a scope."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, timezone: str) -> LedgerReader:
        """Open `path` read-only; LedgerError if missing, locked, not a ledger or too old."""
        if not path.exists():
            raise LedgerError(f"{path}: no ledger yet; run `pacsmig run` first")
        try:
            conn = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            raise _open_error(path, exc) from exc
        reader = cls(conn, path)
        try:
            reader._check_version()
            conn.execute(f"SET TimeZone = '{_quoted(timezone)}'")
        except BaseException:
            conn.close()
            raise
        return reader

    def _check_version(self) -> None:
        try:
            row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        except duckdb.Error as exc:
            raise LedgerError(f"{self.path}: not a pacsmig ledger ({exc})") from exc
        found = int(row[0]) if row and row[0] is not None else 0
        if found != SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path}: ledger schema version {found}, this pacsmig reports on version "
                f"{SCHEMA_VERSION}; run `pacsmig status` with the matching pacsmig to migrate")

    def set_scope(self, scope: ReportScope, salt: str, masked: bool = True) -> None:
        """Fix the studies every later query covers (temp tables `report_scope` and
        `report_instances`); accession numbers masked when `masked`."""
        self._conn.execute(sql_text("scope"), {**scope.sql_params(salt), "masked": masked})
        self._conn.execute(sql_text("scope_instances"))

    def rows(self, name: str, make: Callable[..., T],
             params: Mapping[str, object] | None = None) -> list[T]:
        """Rows of sql/<name>.sql, each passed to `make` by column name."""
        return self.rows_of(sql_text(name), make, params)

    def rows_of(self, sql: str, make: Callable[..., T],
                params: Mapping[str, object] | None = None) -> list[T]:
        """Rows of `sql`, each passed to `make` by column name."""
        cursor = self._conn.execute(sql, dict(params or {}))
        names = [column[0] for column in cursor.description or ()]
        return [make(**dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def one(self, name: str, make: Callable[..., T]) -> T:
        """The single row of sql/<name>.sql."""
        return self.rows(name, make)[0]

    def copy(self, name: str, target: Path, options: str) -> None:
        """Write the rows of sql/<name>.sql to `target` with DuckDB COPY (e.g. FORMAT PARQUET)."""
        query = sql_text(name).strip().rstrip(";")
        self._conn.execute(f"COPY ({query}) TO '{_quoted(str(target))}' ({options})")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def _open_error(path: Path, exc: duckdb.Error) -> LedgerError:
    if "lock" in str(exc).lower():
        return LedgerError(f"{path}: the ledger is in use (is `pacsmig run` still running?); "
                           f"reports read it after the run ends ({exc})")
    return LedgerError(f"{path}: cannot read the ledger; is it corrupt? ({exc})")

