"""`report_command`: the files it writes into reports.dir, its result, scopes and errors."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import duckdb
import pytest

from runner.dicom.peer import Peer
from runner.errors import InputError, LedgerError
from runner.ledger import LEDGER_FILENAME
from runner.profile.load import LoadedProfile, load_profile
from runner.report.commands import ReportResult, report_command
from tests.profiles import profile_data, write_profile
from tests.unit.test_report_sql import building

SPEC_COLUMNS = ["study_uid", "tier", "source_instances", "received_instances",
                "destination_instances", "status"]


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedProfile:
    data = profile_data(tmp_path, [("old1", Peer("OLDPACS", "127.0.0.1", 11112))],
                        Peer("NEWVNA", "127.0.0.1", 11113), 11114)
    return load_profile(write_profile(tmp_path, data))


def migrate_two_of_three(loaded: LoadedProfile) -> None:
    with building(loaded.profile.reports.dir / LEDGER_FILENAME) as site:
        site.plan("1.1", study_date=date(2014, 2, 3), phase=0, instances=3)
        site.plan("1.2", study_date=date(2019, 5, 6), phase=1)
        site.plan("1.3", study_date=date(2019, 7, 8), phase=1)
        site.migrate("1.1", count=3)
        site.migrate("1.2", count=2)


def run_report(loaded: LoadedProfile, **scope: object) -> tuple[ReportResult, list[str]]:
    lines: list[str] = []
    arguments: dict[str, object] = {"date_from": None, "date_to": None, "phase": None}
    arguments.update(scope)
    result = report_command(loaded, write=lines.append, **arguments)  # type: ignore[arg-type]
    return result, lines


def test_writes_csv_parquet_series_and_signoff_into_the_reports_folder(
        loaded: LoadedProfile) -> None:
    migrate_two_of_three(loaded)
    result, lines = run_report(loaded)
    folder = loaded.profile.reports.dir
    assert [p.name for p in result.files] == [
        "reconciliation.csv", "reconciliation.parquet", "reconciliation_series.csv",
        "signoff.html"]
    assert all(p.parent == folder and p.stat().st_size > 0 for p in result.files)
    assert not list(folder.glob(".*.tmp"))
    assert lines[:4] == [f"Wrote {p}" for p in result.files]
    assert lines[-1] == ("Studies: 2 of 3 verified, 1 not verified; instances at the "
                         "destination: 5 of 7 planned")


def test_the_csv_has_the_spec_columns_first_and_agrees_with_the_parquet(
        loaded: LoadedProfile) -> None:
    migrate_two_of_three(loaded)
    run_report(loaded)
    folder = loaded.profile.reports.dir
    with (folder / "reconciliation.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [*SPEC_COLUMNS, "study_date", "modality", "at_source",
                       "excluded_because", "accession_before", "accession_after"]
    assert [row[:6] for row in rows[1:]] == [["1.1", "local", "3", "3", "3", "verified"],
                                             ["1.2", "local", "2", "2", "2", "verified"],
                                             ["1.3", "local", "2", "0", "0", "pending"]]
    with duckdb.connect() as conn:
        cursor = conn.execute(f"SELECT * FROM '{folder / 'reconciliation.parquet'}'")
        columns = [column[0] for column in cursor.description or ()]
        values = [[str(v) for v in row[:6]] for row in cursor.fetchall()]
    assert columns[:6] == SPEC_COLUMNS
    assert "pseudonym" in columns and "phase" in columns
    assert values == [row[:6] for row in rows[1:]]


def test_discrepancies_are_reported_when_a_study_is_not_verified(
        loaded: LoadedProfile) -> None:
    migrate_two_of_three(loaded)
    full, _ = run_report(loaded)
    first_phase, _ = run_report(loaded, phase=1)
    assert (full.discrepancies, full.not_verified) == (True, 1)
    assert (first_phase.discrepancies, first_phase.planned_studies) == (False, 1)


def test_an_interim_report_has_its_own_files_and_leaves_the_full_report_alone(
        loaded: LoadedProfile) -> None:
    migrate_two_of_three(loaded)
    full, _ = run_report(loaded)
    before = full.files[-1].read_text()
    wave, lines = run_report(loaded, date_from=date(2019, 1, 1), date_to=date(2019, 12, 31),
                             phase=2)
    assert [p.name for p in wave.files] == [
        "reconciliation-phase2-from2019-01-01-to2019-12-31.csv",
        "reconciliation-phase2-from2019-01-01-to2019-12-31.parquet",
        "reconciliation_series-phase2-from2019-01-01-to2019-12-31.csv",
        "signoff-phase2-from2019-01-01-to2019-12-31.html"]
    assert (wave.planned_studies, wave.verified_studies) == (2, 1)
    assert full.files[-1].read_text() == before
    assert ("Scope: interim report: phase 2, studies dated 2019-01-01 to 2019-12-31 "
            "(by study date)") in lines


@pytest.mark.parametrize(("scope", "message"), [
    ({"phase": 0}, "--phase must be 1 or more"),
    ({"date_from": date(2020, 1, 2), "date_to": date(2020, 1, 1)},
     "--from 2020-01-02 is after --to 2020-01-01"),
])
def test_a_scope_that_cannot_be_is_bad_input(loaded: LoadedProfile, scope: dict[str, object],
                                             message: str) -> None:
    migrate_two_of_three(loaded)
    with pytest.raises(InputError, match=message):
        run_report(loaded, **scope)


def test_no_ledger_yet_is_a_ledger_error_and_writes_nothing(loaded: LoadedProfile) -> None:
    with pytest.raises(LedgerError, match="no ledger yet"):
        run_report(loaded)
    assert not loaded.profile.reports.dir.exists()


def test_the_signoff_names_the_profile_file_and_its_sha256(loaded: LoadedProfile) -> None:
    migrate_two_of_three(loaded)
    result, _ = run_report(loaded)
    html = result.files[-1].read_text()
    assert str(loaded.path) in html and loaded.sha256 in html
    assert "Test Site (id test-site)" in html
