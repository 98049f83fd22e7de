"""How facts become rows: the bulk INSERT of a table, by-key UPDATEs, and folding duplicates.

The tools each fact's declaration (runner.ledger.events) writes itself with; the order
and the transaction are apply.py's.

Inserts: rows travel as one list per column, spread by `unnest`, one statement per kind and
batch (`executemany` costs about 100 times more per row). Each is first a plain keyed INSERT
(`upsert=False`, the fast path: only the primary-key index is touched); if a key already
exists, the writer rolls the batch back and writes it again with `upsert=True`, the
`ON CONFLICT` forms, which DuckDB runs as a MERGE over the whole table. Both paths give the
same state, and the same as writing the facts one at a time in order: duplicates inside a
batch are folded (`fold`) by the rule the table's conflict clause applies.

Updates (a study's status, a retrieve's final response, a run's end) are few per batch and
go one row at a time by primary key (`update_each`): a few hundred microseconds each
whatever the table size, where a joined UPDATE would scan the whole table.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # the facts declare their writing without importing DuckDB
    import duckdb

    Conn = duckdb.DuckDBPyConnection

Row = tuple[object, ...]
F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class Table:
    """A table written by bulk INSERT, with the conflict clause used on the slow path.

    `columns` are the ones a fact writes, with the SQL types of the ledger's schema
    (runner.ledger.schema; tests/unit/test_ledger_schema.py holds the two equal).
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    on_conflict: str

    def insert(self, conn: Conn, rows: Sequence[Row], upsert: bool,
               returning: str = "") -> list[Row]:
        """Insert `rows`; with `returning`, the named columns of the rows really inserted."""
        if not rows:
            return []
        names = ", ".join(column for column, _ in self.columns)
        sql = f"INSERT INTO {self.name} ({names}) SELECT {_unnest(self.columns)}"
        if upsert:
            sql += f" {self.on_conflict}"
        if returning:
            sql += f" RETURNING {returning}"
        result = conn.execute(sql, _by_column(rows))
        return [tuple(row) for row in result.fetchall()] if returning else []


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
