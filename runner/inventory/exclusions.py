"""The exclusion list (`source.inventory.exclude`): studies left out on purpose, with why."""

from __future__ import annotations

import csv
from pathlib import Path

from runner.errors import InventoryError, Problem

HEADER = ("StudyInstanceUID", "Reason")


def read_exclusions(path: Path) -> dict[str, str]:
    """`StudyInstanceUID[,Reason]` rows as Study Instance UID -> reason ("" when none given);
    every bad row is reported with its line and column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InventoryError([Problem(str(path), 1, 1, f"cannot be read: {exc}")]) from None
    names = [c.strip() for c in rows[0]] if rows else []
    if names not in (list(HEADER), list(HEADER[:1])):
        raise InventoryError([Problem(str(path), 1, 1, "header must be: StudyInstanceUID,Reason "
                                                       "(Reason may be left out)")])
    problems: list[Problem] = []
    table: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) > len(names):
            problems.append(Problem(str(path), line, 1,
                                    f"expected at most {len(names)} fields, found {len(row)}"))
            continue
        uid = row[0].strip()
        if not uid:
            problems.append(Problem(str(path), line, 1, "empty StudyInstanceUID"))
            continue
        table[uid] = row[1].strip() if len(row) > 1 else ""
    if problems:
        raise InventoryError(problems)
    return table
