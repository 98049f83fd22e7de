"""How facts become rows: the bulk INSERT of a table, by-key UPDATEs, and folding duplicates.

The tools each fact's declaration (runner.ledger.events) writes itself with; the order
and the transaction are apply.py's.

Inserts: rows travel as one list per column, spread by `unnest`, one statement per kind and
batch (`executemany` costs about 100 times more per row). Each is first a plain keyed INSERT
(`upsert=False`, the fast path: only the primary-key index is touched); if a key already
exists, the writer rolls the batch back and writes it again with `upsert=True`. A table
whose facts are written once and never changed has a `Key` of one column: on that path the
batch's keys are looked up in its index a few dozen at a time and only the rows not there
are inserted (flat, whatever the table's size). The instance facts' key is 128 bits of the
fact's time and a hash of the instance (`hashed_key`): DuckDB looks a one-column key up in its
index, but scans the whole table for a composite one. The other tables (a study's row, the
census's) take their `ON CONFLICT` form, which DuckDB runs as a MERGE over the whole table
(a table of studies, not of instances). Both paths give the same state, and the same as
writing the facts one at a time in order: duplicates inside a batch are folded (`fold`) by
the rule the table's conflict clause applies.

Updates (a study's status, a retrieve's final response, a run's end) are few per batch and
go one row at a time by primary key (`update_each`): a few hundred microseconds each
whatever the table size, where a joined UPDATE would scan the whole table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # the facts declare their writing without importing DuckDB
    import duckdb

    Conn = duckdb.DuckDBPyConnection

Row = tuple[object, ...]
F = TypeVar("F")


LOOKUP = 32  # keys per look-up: DuckDB uses the index for a short list, scans for a long one
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Key:
    """A table's primary key of one column, looked up on the slow path instead of
    `ON CONFLICT DO NOTHING`: `of_row` gives its value for a row (as text, the way it binds),
    `sql` computes it from the row's columns when it is not one of them."""

    column: str
    sql_type: str
    of_row: Callable[[Row], str]
    sql: str = ""

    def lookup_sql(self, table: str) -> str:
        """Which of a list of keys (bound as text) `table` holds."""
        cast = "" if self.sql_type == "VARCHAR" else f"::{self.sql_type}[]"
        return (f"SELECT {self.column}::VARCHAR FROM {table}"
                f" WHERE {self.column} = ANY(?::VARCHAR[]{cast})")


@dataclass(frozen=True, slots=True)
class Table:
    """A table written by bulk INSERT, with the conflict clause used on the slow path (or,
    with a `key`, a look-up of the batch's keys).

    `columns` are the ones a fact writes, with the SQL types of the ledger's schema
    (runner.ledger.schema; tests/unit/test_ledger_schema.py holds the two equal).
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    on_conflict: str
    key: Key | None = None

    def insert(self, conn: Conn, rows: Sequence[Row], upsert: bool,
               returning: str = "") -> list[Row]:
        """Insert `rows`; with `returning`, the named columns of the rows really inserted."""
        if upsert and self.key is not None:
            rows = self._not_there(conn, rows, self.key)
        if not rows:
            return []
        names = ", ".join(column for column, _ in self.columns)
        sql = f"SELECT {_unnest(self.columns)}"
        if self.key is not None and self.key.sql:
            names += f", {self.key.column}"
            sql = f"SELECT *, {self.key.sql} FROM ({sql})"
        sql = f"INSERT INTO {self.name} ({names}) {sql}"
        if upsert and self.key is None:
            sql += f" {self.on_conflict}"
        if returning:
            sql += f" RETURNING {returning}"
        result = conn.execute(sql, _by_column(rows))
        return [tuple(row) for row in result.fetchall()] if returning else []

    def _not_there(self, conn: Conn, rows: Sequence[Row], key: Key) -> list[Row]:
        """The rows whose key the table does not hold, looked up in its index."""
        keys = [key.of_row(row) for row in rows]
        sql = key.lookup_sql(self.name)
        there = {str(found) for start in range(0, len(keys), LOOKUP)
                 for (found,) in conn.execute(sql, [keys[start:start + LOOKUP]]).fetchall()}
        return [row for value, row in zip(keys, rows, strict=True) if value not in there]


def hashed_key(uid: str, column: str) -> str:
    """The SQL of an instance fact's key: the fact's time in microseconds since 1970 (the
    upper 64 bits), then 64 bits of the MD5 of the UID. Facts arrive in time order, so new
    keys go to one edge of the index (where random keys would touch, and page in, a new
    part of it each, the commit's cost growing with the ledger)."""
    return (f"((epoch_us({column})::UHUGEINT << 64)"
            f" | md5_number_lower({uid})::UHUGEINT)")


def hashed_key_of(uid: str, at: datetime) -> str:
    """`hashed_key` computed here, as decimal text (a Python int this large binds as
    DOUBLE)."""
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return str((micros << 64) | md5_number_lower(uid))


def md5_number_lower(text: str) -> int:
    """DuckDB's md5_number_lower: the MD5's last eight bytes, little-endian."""
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "little")


def instance_fact_key(uid_column: str, time_column: str, uid_at: int, time_at: int) -> Key:
    """The key of an instance fact table: the hash of its SOP Instance UID (column
    `uid_column`, row index `uid_at`) and the fact's time (`time_column`, `time_at`)."""
    return Key("fact_key", "UHUGEINT",
               lambda row: hashed_key_of(str(row[uid_at]), _aware(row[time_at])),
               hashed_key(uid_column, time_column))


def _aware(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"a fact's time is a datetime, not {type(value).__name__}")
    return value


def _unnest(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"unnest(?::{sql_type}[]) AS {name}" for name, sql_type in columns)


def _by_column(rows: Sequence[Row]) -> list[list[object]]:
    return [list(column) for column in zip(*rows, strict=True)]


def update_each(conn: Conn, sql: str, rows: Sequence[Row]) -> None:
    """Run a by-primary-key UPDATE once per row (see the module docstring for why)."""
    for row in rows:
        conn.execute(sql, list(row))


def fold(facts: Sequence[F], key: Callable[[F], Hashable],
         replaces: Callable[[F, F], bool]) -> list[F]:
    """One fact per key: a later fact takes the place of the kept one when `replaces`."""
    kept: dict[Hashable, F] = {}
    for fact in facts:
        old = kept.get(key(fact))
        if old is None or replaces(fact, old):
            kept[key(fact)] = fact
    return list(kept.values())


def first(new: object, old: object) -> bool:
    """The first fact of a key stays (ON CONFLICT DO NOTHING)."""
    return False


def last(new: object, old: object) -> bool:
    """The last fact of a key wins (ON CONFLICT DO UPDATE)."""
    return True
