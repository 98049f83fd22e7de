"""The clinic list (priority.csv): rows read into requests, read again only when the file
changes, and a bad row reported by file:line:column while the good ones are served."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

from runner.execute.priority.clinic_list import ClinicList, read_clinic_list

NOW = datetime(2026, 12, 5, 8, tzinfo=UTC)


def write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_rows_become_requests_in_any_column_order_with_a_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "clinic.csv", "date,patient_id,modality\n"
                 "2026-12-06,P1,ct\n\n20261207,P2,\n", bom=True)
    read = read_clinic_list(path, NOW)
    assert read.problems == []
    assert [(r.patient_id, r.due, r.modality) for r in read.requests] == [
        ("P1", date(2026, 12, 6), "CT"), ("P2", date(2026, 12, 7), "")]
    assert read.requests[0].event == "clinic.csv line 2"


def test_a_bad_row_is_reported_at_its_field_and_the_others_are_served(tmp_path: Path) -> None:
    path = write(tmp_path / "clinic.csv", "patient_id,date\nP1,2026-13-01\nP*,2026-12-06\n"
                 "P3,2026-12-06\n")
    read = read_clinic_list(path, NOW)
    assert [r.patient_id for r in read.requests] == ["P3"]
    assert [str(p) for p in read.problems] == [
        f"{path}:2:4: date '2026-13-01' is not a date (YYYY-MM-DD or YYYYMMDD)",
        f"{path}:3:1: patient_id has wildcard characters (* ? \\)"]


def test_a_header_without_the_required_columns_is_one_problem(tmp_path: Path) -> None:
    read = read_clinic_list(write(tmp_path / "c.csv", "patient,day\nP1,2026-12-06\n"), NOW)
    assert read.requests == [] and "missing: patient_id, date" in str(read.problems[0])


def test_a_missing_list_is_no_request_and_no_problem(tmp_path: Path) -> None:
    assert read_clinic_list(tmp_path / "absent.csv", NOW).requests == []


def test_the_list_is_read_again_only_when_it_changes(tmp_path: Path) -> None:
    path = write(tmp_path / "clinic.csv", "patient_id,date\nP1,2026-12-06\n")
    clinic = ClinicList(path)
    first = clinic.read_if_changed(NOW).requests
    assert len(first) == 1 and clinic.read_if_changed(NOW).requests == []
    write(path, "patient_id,date\nP1,2026-12-06\nP2,2026-12-06\n")
    os.utime(path, ns=(1, 2))
    again = clinic.read_if_changed(NOW).requests
    assert [r.patient_id for r in again] == ["P1", "P2"]
    assert again[0].request_id == first[0].request_id  # the same row: the same request
