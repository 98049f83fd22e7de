"""Storage tiers from a CSV table (`tiering.location: csv:PATH`) or a cut-off date
(`tiering.by_date`) instead of C-FIND answers."""

from __future__ import annotations

import csv
import dataclasses
from datetime import date
from pathlib import Path

from runner.errors import InventoryError, Problem
from runner.inventory.model import AVAILABILITY_NOTE, Inventory
from runner.profile.tiers import Location

_ALLOWED = ", ".join(loc.value for loc in Location)


def read_location_table(path: Path) -> dict[str, Location]:
    """`StudyInstanceUID,Location` rows as a mapping; every bad row reported by line."""
    problems: list[Problem] = []
    table: dict[str, Location] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError([Problem(str(path), 1, 1, f"cannot be read: {exc}")]) from None
    if not rows or [c.strip() for c in rows[0]] != ["StudyInstanceUID", "Location"]:
        raise InventoryError([Problem(str(path), 1, 1,
                                      "header must be: StudyInstanceUID,Location")])
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            problems.append(Problem(str(path), line, 1, f"expected 2 fields, found {len(row)}"))
            continue
        uid, where = row[0].strip(), row[1].strip().lower()
        try:
            table[uid] = Location(where)
        except ValueError:
            column = len(row[0]) + 2
            problems.append(Problem(str(path), line, column,
                                    f"unknown location '{row[1]}' (allowed: {_ALLOWED})"))
    if problems:
        raise InventoryError(problems)
    return table


def apply_location_table(inventory: Inventory, path: Path) -> Inventory:
    """The inventory with each study's tier taken from the table where it names the study."""
    table = read_location_table(path)
    studies = tuple(dataclasses.replace(s, location=table[s.study_uid])
                    if s.study_uid in table else s for s in inventory.studies)
    missing = sum(1 for s in inventory.studies if s.study_uid not in table)
    notes = inventory.notes
    if missing:
        notes = (*notes, f"{missing} studies are not in the location table {path}; "
                         "their tier is taken from the inventory")
    return dataclasses.replace(inventory, studies=studies, notes=notes)


def tiers_from_table(inventory: Inventory, path: Path) -> Inventory:
    """The inventory with its tiers from the location table at `path` (tiering.location
    `csv:`); the note that InstanceAvailability was not answered is dropped unless some
    study still has its tier from the inventory."""
    tiered = apply_location_table(inventory, path)
    if any("are not in the location table" in note for note in tiered.notes):
        return tiered
    notes = tuple(n for n in tiered.notes if not n.startswith(AVAILABILITY_NOTE))
    return dataclasses.replace(tiered, notes=(*notes, f"tiers from the location table {path}"))


def tiers_by_date(inventory: Inventory, cut_off: date) -> Inventory:
    """Each study nearline when dated before `cut_off`, else local (tiering.by_date)."""
    studies = tuple(dataclasses.replace(
        s, location=Location.NEARLINE if s.sort_date < cut_off else Location.LOCAL)
        for s in inventory.studies)
    notes = tuple(n for n in inventory.notes if not n.startswith(AVAILABILITY_NOTE))
    note = f"tiers by date (tiering.by_date): before {cut_off:%Y-%m-%d} nearline, from it local"
    return dataclasses.replace(inventory, studies=studies, notes=(*notes, note))
