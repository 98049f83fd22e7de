"""Tiers from a cut-off date (tiering.by_date) or a location CSV replace the note that the
source answered no InstanceAvailability."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from runner.commands import census
from runner.commands.census import take_inventory
from runner.inventory.locations import tiers_by_date
from runner.inventory.model import Inventory, Study
from runner.morph.loaded import load_profile, validate_profile
from runner.profile.tiers import Location
from tests.unit.test_profile_validation import BASE

NOTE = "InstanceAvailability not answered or not recognised for 2 of 2 studies ((none): 2)"


def _inventory() -> Inventory:
    studies = tuple(Study(study_uid=f"1.2.{i}", study_date=day, modality="CT", instances=1,
                          size_mb=1.0, location=Location.LOCAL)
                    for i, day in enumerate((date(2019, 12, 31), date(2020, 1, 1))))
    return Inventory(studies, "c-find", (NOTE, "another note"))


def test_by_date_puts_older_studies_nearline_and_drops_the_availability_note() -> None:
    tiered = tiers_by_date(_inventory(), date(2020, 1, 1))
    assert [s.location for s in tiered.studies] == [Location.NEARLINE, Location.LOCAL]
    assert tiered.notes[0] == "another note"
    assert not any(n.startswith("InstanceAvailability") for n in tiered.notes)
    assert "before 2020-01-01 nearline" in tiered.notes[-1]


def test_a_location_csv_that_names_every_study_drops_the_availability_note(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "locations.csv"
    table.write_text("StudyInstanceUID,Location\n1.2.0,nearline\n1.2.1,local\n")
    path = tmp_path / "site.yaml"
    path.write_text(BASE + f"tiering:\n  location: 'csv:{table}'\n")
    profile = load_profile(path).profile
    monkeypatch.setattr(census, "live_inventory", lambda _p, _t, _since=None: _inventory())
    inventory = take_inventory(profile, None, date(2024, 1, 1))
    assert [s.location for s in inventory.studies] == [Location.NEARLINE, Location.LOCAL]
    assert not any(n.startswith("InstanceAvailability") for n in inventory.notes)
    assert any("tiers from the location table" in n for n in inventory.notes)


def test_by_date_is_a_date_in_the_profile_and_not_with_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE + "tiering:\n  by_date: '2020-01-01'\n")
    assert load_profile(path).profile.tiering.by_date == date(2020, 1, 1)
    table = tmp_path / "locations.csv"
    table.write_text("StudyInstanceUID,Location\n")
    path.write_text(BASE + f"tiering:\n  by_date: '2020-01-01'\n  location: 'csv:{table}'\n")
    problems = validate_profile(path)
    assert len(problems) == 1 and "keep one" in str(problems[0]), problems
