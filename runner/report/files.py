"""Writing report files: CSV and Parquet by DuckDB COPY, HTML as text; each file is written
under a temporary name and renamed into place, so a reader never sees half a file."""

from __future__ import annotations

import os
from pathlib import Path

from runner.report.source import LedgerReader

CSV = "FORMAT CSV, HEADER, DELIMITER ','"
PARQUET = "FORMAT PARQUET"


def export_tables(reader: LedgerReader, folder: Path, suffix: str) -> list[Path]:
    """reconciliation.csv (the spec's columns), .parquet (plus analyst columns) and
    reconciliation_series.csv, for the scope set on `reader`; the paths written."""
    exports = (("reconciliation", f"reconciliation{suffix}.csv", CSV),
               ("reconciliation_analyst", f"reconciliation{suffix}.parquet", PARQUET),
               ("series", f"reconciliation_series{suffix}.csv", CSV))
    written = []
    for query, name, options in exports:
        target = folder / name
        temporary = _temporary(target)
        reader.copy(query, temporary, options)
        os.replace(temporary, target)
        written.append(target)
    return written


def write_text(target: Path, content: str) -> Path:
    """Write `content` (UTF-8) to `target` atomically; returns `target`."""
    temporary = _temporary(target)
    temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, target)
    return target


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")
