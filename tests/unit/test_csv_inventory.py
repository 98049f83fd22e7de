"""Tests of the inventory CSV reader: values read, and every problem at its line and column."""

from __future__ import annotations

import csv
import gc
from datetime import date
from pathlib import Path

import pytest

from benchmarks.inventory_csv_1m import write_synthetic_inventory
from runner.errors import InventoryError, Problem
from runner.inventory.csv_reader import MAX_REPORTED_PROBLEMS, read_inventory_csv
from runner.inventory.model import Study
from runner.profile.tiers import Location

EXAMPLE = Path(__file__).resolve().parent.parent / "data" / "inventory.example.csv"
HEADER = "StudyInstanceUID,StudyDate,Modality,Instances,SizeMB,Location,Device"
GOOD = "1.2.826.0.1.3680043.8.498.1,20120611,MR,380,95.2,local,wfm2"
DEVICES = ("wfm1", "wfm2")


def _write(tmp_path: Path, *lines: str, newline: str = "\n", prefix: bytes = b"") -> Path:
    path = tmp_path / "inventory.csv"
    path.write_bytes(prefix + newline.join(lines).encode() + newline.encode())
    return path


def _problems(path: Path, known_devices: tuple[str, ...] | None = DEVICES) -> list[Problem]:
    with pytest.raises(InventoryError) as caught:
        read_inventory_csv(path, known_devices)
    return caught.value.problems


def _only_problem(path: Path, known_devices: tuple[str, ...] | None = DEVICES) -> Problem:
    problems = _problems(path, known_devices)
    assert len(problems) == 1, problems
    return problems[0]


# ---- good files ---------------------------------------------------------------------------


def test_example_file_reads_into_five_studies_with_their_values() -> None:
    inventory = read_inventory_csv(EXAMPLE, DEVICES)
    assert inventory.origin == f"csv:{EXAMPLE}"
    assert inventory.studies[0] == Study(
        "1.2.826.0.1.3680043.8.498.1001", date(2007, 3, 12), "CR", 2, 18.5,
        Location.NEARLINE, "wfm1",
    )
    assert [s.study_uid[-4:] for s in inventory.studies] == ["1001", "1002", "1003", "1004", "1005"]
    assert [s.study_date for s in inventory.studies] == [
        date(2007, 3, 12), date(2009, 1, 5), date(2012, 6, 11), date(2012, 11, 30),
        date(2013, 4, 2),
    ]
    assert [s.modality for s in inventory.studies] == ["CR", "CT", "MR", "CT", "DX"]
    assert [s.instances for s in inventory.studies] == [2, 420, 380, 512, 1]
    assert [s.size_mb for s in inventory.studies] == [18.5, 210.0, 95.2, 256.0, 9.1]
    assert [s.location for s in inventory.studies] == [Location.NEARLINE] * 2 + [
        Location.LOCAL
    ] * 3
    assert [s.device for s in inventory.studies] == ["wfm1", "wfm1", "wfm2", "wfm1", "wfm2"]


def test_example_file_is_the_one_in_the_spec() -> None:
    spec = Path("/work/shared/spec/inventory.example.csv")
    if spec.exists():
        assert EXAMPLE.read_bytes() == spec.read_bytes()


def test_empty_size_instances_and_device_are_unknown(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, "1.2.3,20200101,CT,,,offline,")
    (study,) = read_inventory_csv(path, DEVICES).studies
    assert (study.instances, study.size_mb, study.device) == (None, None, None)
    assert study.location is Location.OFFLINE
    assert study.estimated_mb == 0.5


def test_bom_crlf_blank_lines_and_spaces_around_values_are_accepted(tmp_path: Path) -> None:
    spaced = " 1.2.3 , 20200101 ,CT , 7 , 1.5 , nearline , wfm1 "
    lines = [HEADER, "", spaced, "   ", "1.2.4,20200101,CT,1,1,local,wfm1", ""]
    path = _write(tmp_path, *lines, newline="\r\n", prefix=b"\xef\xbb\xbf")
    first, second = read_inventory_csv(path, DEVICES).studies
    assert first == Study("1.2.3", date(2020, 1, 1), "CT", 7, 1.5, Location.NEARLINE, "wfm1")
    assert second.study_uid == "1.2.4"


def test_lone_carriage_returns_end_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, GOOD, "1.2.3,20200101,CT,1,1,local,", newline="\r")
    assert len(read_inventory_csv(path, DEVICES).studies) == 2


def test_any_device_is_accepted_when_no_devices_are_known(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, "1.2.3,20200101,CT,1,1,local,anything")
    assert read_inventory_csv(path, None).studies[0].device == "anything"


def test_header_only_is_an_empty_inventory(tmp_path: Path) -> None:
    assert read_inventory_csv(_write(tmp_path, HEADER), DEVICES).studies == ()


def test_multi_valued_modality_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, "1.2.3,20200101,CT\\SR,1,1,local,wfm1")
    assert read_inventory_csv(path, DEVICES).studies[0].modality == "CT\\SR"


@pytest.mark.parametrize("uid", ["0", "0.0", "1.0.3", "2.25." + "9" * 59, "10.20.300"])
def test_valid_uid_forms_are_accepted(tmp_path: Path, uid: str) -> None:
    path = _write(tmp_path, HEADER, f"{uid},20200101,CT,1,1,local,wfm1")
    assert read_inventory_csv(path, DEVICES).studies[0].study_uid == uid


def test_synthetic_benchmark_inventory_reads_cleanly(tmp_path: Path) -> None:
    path = write_synthetic_inventory(tmp_path / "synthetic.csv", 3000, seed=7)
    studies = read_inventory_csv(path, DEVICES).studies
    assert len(studies) == 3000
    assert {s.device for s in studies} == {"wfm1", "wfm2", None}
    assert {s.location for s in studies} == set(Location)
    assert min(s.study_date for s in studies) >= date(2005, 1, 1)
    assert max(s.study_date for s in studies) <= date(2026, 12, 31)
    old = [s for s in studies if s.study_date.year < 2012]
    nearline = sum(s.location is Location.NEARLINE for s in old) / len(old)
    assert 0.6 < nearline < 0.8


def test_reading_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    assert gc.isenabled()
    read_inventory_csv(EXAMPLE, DEVICES)
    with pytest.raises(InventoryError):
        read_inventory_csv(_write(tmp_path, HEADER, "x"), DEVICES)
    assert gc.isenabled()


# ---- one bad value: its line, its column, its message -----------------------------------


@pytest.mark.parametrize(
    ("row", "column", "fragment"),
    [
        (",20200101,CT,1,1,local,wfm1", 1, "empty StudyInstanceUID"),
        ("1.2.x,20200101,CT,1,1,local,wfm1", 1, "may contain only digits and dots"),
        ("1.2.٣,20200101,CT,1,1,local,wfm1", 1, "may contain only digits and dots"),
        ("1." + "2" * 63 + ",20200101,CT,1,1,local,wfm1", 1, "65 characters long; at most 64"),
        ("1..2,20200101,CT,1,1,local,wfm1", 1, "empty component"),
        ("1.2.,20200101,CT,1,1,local,wfm1", 1, "empty component"),
        (".1.2,20200101,CT,1,1,local,wfm1", 1, "empty component"),
        ("1.02,20200101,CT,1,1,local,wfm1", 1, "leading zero"),
        ("01.2,20200101,CT,1,1,local,wfm1", 1, "leading zero"),
        ("1.2.3,2020-01-01,CT,1,1,local,wfm1", 7, "'2020-01-01' is not 8 digits (YYYYMMDD)"),
        ("1.2.3,202001011,CT,1,1,local,wfm1", 7, "is not 8 digits"),
        ("1.2.3,20230229,CT,1,1,local,wfm1", 7, "'20230229' is not a real calendar date"),
        ("1.2.3,20201301,CT,1,1,local,wfm1", 7, "not a real calendar date"),
        ("1.2.3,00000101,CT,1,1,local,wfm1", 7, "not a real calendar date"),
        ("1.2.3,20200101,,1,1,local,wfm1", 16, "empty Modality"),
        ("1.2.3,20200101,ct,1,1,local,wfm1", 16, "'ct' is not a DICOM modality code"),
        ("1.2.3,20200101,CT,-3,1,local,wfm1", 19, "Instances '-3' must not be negative"),
        ("1.2.3,20200101,CT,many,1,local,wfm1", 19, "Instances 'many' is not a whole number"),
        ("1.2.3,20200101,CT,2.5,1,local,wfm1", 19, "is not a whole number"),
        ("1.2.3,20200101,CT,1,-0.5,local,wfm1", 21, "SizeMB '-0.5' must not be negative"),
        ("1.2.3,20200101,CT,1,12MB,local,wfm1", 21, "SizeMB '12MB' is not a number"),
        ("1.2.3,20200101,CT,1,1_0,local,wfm1", 21, "is not a number"),
        ("1.2.3,20200101,CT,1,nan,local,wfm1", 21, "'nan' is not a finite number"),
        ("1.2.3,20200101,CT,1,inf,local,wfm1", 21, "is not a finite number"),
        (
            "1.2.3,20200101,CT,1,1,cloud,wfm1",
            23,
            "unknown Location 'cloud'; expected one of: local, nearline, offline",
        ),
        ("1.2.3,20200101,CT,1,1,Local,wfm1", 23, "unknown Location 'Local'"),
        (
            "1.2.3,20200101,CT,1,1,local,wfm3",
            29,
            "unknown Device 'wfm3'; the profile's devices are: wfm1, wfm2",
        ),
        ("1.2.3,20200101,CT,1,1,local", 28, "row has 6 fields, expected 7"),
        ("1.2.3,20200101,CT,1,1,local,wfm1,", 34, "row has 8 fields, expected 7"),
        ("1.2.3", 6, "row has 1 fields, expected 7 (StudyInstanceUID,StudyDate,"),
    ],
)
def test_bad_value_is_reported_at_its_line_and_column(
    tmp_path: Path, row: str, column: int, fragment: str
) -> None:
    path = _write(tmp_path, HEADER, GOOD, row)
    problem = _only_problem(path)
    assert (problem.path, problem.line, problem.column) == (str(path), 3, column)
    assert fragment in problem.message


def test_duplicate_uid_names_the_line_of_the_first(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, GOOD, "1.2.3,20200101,CT,1,1,local,wfm1", GOOD)
    problem = _only_problem(path)
    assert (problem.line, problem.column) == (4, 1)
    uid = GOOD.split(",")[0]
    assert problem.message == f"duplicate StudyInstanceUID '{uid}'; first on line 2"


def test_column_follows_quoted_fields_containing_commas(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, '"1.2.3","2020,0101",CT,1,1,"loc""al",wfm1')
    first, second = _problems(path)
    assert (first.line, first.column) == (2, 9)
    assert "StudyDate '2020,0101'" in first.message
    assert (second.line, second.column) == (2, 28)
    assert "Location 'loc\"al'" in second.message


def test_field_after_a_line_break_in_quotes_is_located_on_its_own_line(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, GOOD, '1.2.3,"2020\n0101",CT,1,1,local,wfm9', GOOD[:-1] + "1")
    date_problem, device_problem, *_ = _problems(path)
    assert (date_problem.line, date_problem.column) == (3, 7)
    assert (device_problem.line, device_problem.column) == (4, 20)


def test_device_is_not_checked_when_no_devices_are_known(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, "1.2.3,20200101,CT,1,1,cloud,wfm9")
    assert "Location" in _only_problem(path, None).message


def test_values_in_messages_are_quoted_and_shortened(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, "1.2.3,20200101,CT,1,1,\x1b[31m" + "x" * 100 + ",wfm1")
    message = _only_problem(path).message
    assert "\\x1b[31m" in message and "\x1b" not in message
    assert "x" * 50 not in message


# ---- the header -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "column", "fragment"),
    [
        (HEADER.replace(",Device", ""), len(HEADER) - 6, "header is missing Device; expected"),
        (HEADER.replace("SizeMB,", ""), len(HEADER) - 6, "header is missing SizeMB"),
        (HEADER.replace("StudyDate", "studydate"), 18, "'studydate' should be 'StudyDate'"),
        (HEADER.replace("StudyInstanceUID", "StudyUID"), 1, "'StudyUID' should be"),
        (HEADER + ",Notes", len(HEADER) + 2, "unexpected header column 'Notes'"),
        (HEADER.replace("Modality,Instances", "Instances,Modality"), 28, "out of order"),
        (HEADER + ",Device", len(HEADER) + 2, "repeated or out of order"),
    ],
)
def test_bad_header_names_what_is_expected(
    tmp_path: Path, header: str, column: int, fragment: str
) -> None:
    path = _write(tmp_path, header, "x,y")
    problem = _only_problem(path)
    assert (problem.line, problem.column) == (1, column)
    assert fragment in problem.message
    assert HEADER in problem.message


def test_header_after_blank_lines_is_found_on_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "", "", HEADER.lower())
    assert {problem.line for problem in _problems(path)} == {3}


def test_empty_file_asks_for_the_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("\n\n")
    problem = _only_problem(path)
    assert (problem.line, problem.column) == (1, 1)
    assert f"inventory file is empty; expected the header {HEADER}" == problem.message


# ---- several problems, many problems, unreadable files ------------------------------------


def test_all_problems_of_a_file_are_reported_at_once_in_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEADER,
        "1.2.3,2020,CT,1,1,local,wfm1",
        GOOD,
        "1.2.x,20200101,CT,-1,1,local,wfm1",
        "",
        "1.2.4,20200101,CT,1,1,attic,wfm7",
    )
    located = [(p.line, p.column) for p in _problems(path)]
    assert located == [(2, 7), (4, 1), (4, 19), (6, 23), (6, 29)]


def test_problems_beyond_the_cap_are_counted_not_listed(tmp_path: Path) -> None:
    bad_rows = [f"1.2.{n},2020,CT,1,1,local,wfm1" for n in range(1, MAX_REPORTED_PROBLEMS + 51)]
    problems = _problems(_write(tmp_path, HEADER, *bad_rows))
    assert len(problems) == MAX_REPORTED_PROBLEMS + 1
    assert [p.line for p in problems[:3]] == [2, 3, 4]
    last = problems[-1]
    assert last.line == MAX_REPORTED_PROBLEMS + 2
    assert last.message == "... and 50 more problems (only the first 200 are listed)"


def test_missing_file_is_an_inventory_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    problem = _only_problem(path)
    assert problem.path == str(path)
    assert "not found" in problem.message


def test_folder_instead_of_file_is_an_inventory_error(tmp_path: Path) -> None:
    assert "cannot be read" in _only_problem(tmp_path).message


def test_file_that_is_not_utf8_is_located_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    text = f"{HEADER}\n{GOOD}\n1.2.3,20200101,CT,1,1,local,wfm1 caf\xe9\n"
    path.write_bytes(text.encode("latin-1"))
    problem = _only_problem(path)
    assert (problem.path, problem.line, problem.column) == (str(path), 3, 37)
    assert "not UTF-8" in problem.message and "0xe9" in problem.message


def test_csv_level_error_is_reported_and_reading_goes_on(tmp_path: Path) -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    rows = [f"1.2.3,{huge},CT,1,1,local,wfm1", "1.2.4,2020,CT,1,1,local,wfm1"]
    path = _write(tmp_path, HEADER, *rows)
    first, second = _problems(path)
    assert first.line == 2 and "not valid CSV: field larger than field limit" in first.message
    assert (second.line, second.column) == (3, 7)


def test_an_empty_study_date_is_an_undated_study_not_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER, GOOD, "1.2.9,,CT,1,1,local,wfm1", "1.2.10,  ,MR,2,,local,")
    studies = {s.study_uid: s for s in read_inventory_csv(path, DEVICES).studies}
    assert studies["1.2.9"].study_date is None and studies["1.2.10"].study_date is None
