"""CSV lookup tables for `map` rules: a `from,to` header, then one mapping a line."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType


class TableError(ValueError):
    """A lookup table that cannot be used; the message names the line where it can."""


@dataclass(frozen=True)
class LookupTable:
    """A loaded table: `from` value -> `to` value, both without surrounding spaces."""

    path: Path
    entries: Mapping[str, str]
    lines: Mapping[str, int]  # `from` value -> line it is on, for messages

    def __len__(self) -> int:
        return len(self.entries)


def load_table(path: Path) -> LookupTable:
    """Read and check a table. Messages never quote values: they may identify patients."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TableError(f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TableError(f"is not UTF-8 text (byte {exc.start})") from None
    entries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for line, source, target in _rows(text):
        if source in entries and entries[source] != target:
            raise TableError(f"line {line}: the 'from' value of line {lines[source]} "
                             "again, with a different 'to' value")
        entries.setdefault(source, target)
        lines.setdefault(source, line)
    return LookupTable(path, MappingProxyType(entries), MappingProxyType(lines))


def _rows(text: str) -> Iterator[tuple[int, str, str]]:
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or [cell.strip().lower() for cell in header] != ["from", "to"]:
        raise TableError("line 1: the header must be 'from,to'")
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise TableError(f"line {reader.line_num}: {len(row)} columns; "
                             "a row has two, from and to")
        yield reader.line_num, row[0].strip(), row[1].strip()
