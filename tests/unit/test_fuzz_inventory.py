"""Property tests of the inventory CSV reader: any file gives an Inventory or an
InventoryError whose problems are located inside the file; nothing else is ever raised."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import InventoryError
from runner.inventory.csv_reader import read_inventory_csv
from runner.inventory.csv_values import HEADER
from runner.inventory.model import Inventory

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
DEVICES = ("wfm1", "wfm2")
GOOD_ROW = ["1.2.826.0.1.3680043.8.498.1", "20120611", "MR", "380", "95.2", "local", "wfm2"]

_FIELD_VALUES = [
    "", " ", "1.2.3", "1.2.03", "1..2", ".1", "1.2.3.", "1" * 70, "../../etc/passwd", "a/b",
    "20120611", "20120230", "2012-06-11", "99999999", "00000000", "-1", "0", "1e309", "nan",
    "inf", "-0", "1,5", "95.2", "CT", "MR", "ct", "C T", "X" * 20, "local", "nearline",
    "offline", "LOCAL", "tape", "wfm1", "wfm2", "wfm3", '"', '""', "'", "\t", "\r", "\n",
    "\x00", "\ufeff", "é", "\U0001f600", "=cmd|' /C calc'!A0", "NULL", "None",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz-inventory")


def _read(folder: Path, data: bytes, devices: tuple[str, ...] | None = DEVICES) -> None:
    """Read `data` as an inventory; only an Inventory or a located InventoryError may come."""
    path = folder / "inventory.csv"
    path.write_bytes(data)
    lines = max(1, data.count(b"\n") + data.count(b"\r") + 1)
    try:
        inventory = read_inventory_csv(path, devices)
    except InventoryError as error:
        assert error.problems, "an InventoryError without a problem"
        for problem in error.problems:
            assert problem.path == str(path)
            assert problem.message.strip()
            assert 1 <= problem.line <= lines, (problem, lines)
            assert problem.column >= 1, problem
        return
    assert isinstance(inventory, Inventory)
    for study in inventory.studies:
        assert "/" not in study.study_uid and ".." not in study.study_uid


def test_the_example_row_reads_in_the_fuzz_folder(folder: Path) -> None:
    data = (",".join(HEADER) + "\n" + ",".join(GOOD_ROW) + "\n").encode()
    _read(folder, data)
    assert len(read_inventory_csv(folder / "inventory.csv", DEVICES).studies) == 1


@given(data=st.binary(max_size=400))
@FUZZ
def test_random_bytes_raise_only_inventory_error(folder: Path, data: bytes) -> None:
    _read(folder, data)


@given(text=st.text(max_size=400))
@FUZZ
def test_random_text_raises_only_inventory_error(folder: Path, text: str) -> None:
    _read(folder, text.encode("utf-8"), None)


@given(text=st.text(max_size=300))
@FUZZ
def test_random_text_under_a_good_header_raises_only_inventory_error(folder: Path,
                                                                     text: str) -> None:
    _read(folder, (",".join(HEADER) + "\n" + text).encode("utf-8"))


_FIELD = st.sampled_from(_FIELD_VALUES) | st.text(max_size=12)
_ROW = st.lists(_FIELD, min_size=0, max_size=9)


@given(rows=st.lists(_ROW, max_size=12), newline=st.sampled_from(["\n", "\r\n", "\r"]),
       bom=st.booleans(), devices=st.sampled_from([DEVICES, None, ()]))
@FUZZ
def test_rows_of_wrong_values_raise_only_inventory_error(
        folder: Path, rows: list[list[str]], newline: str, bom: bool,
        devices: tuple[str, ...] | None) -> None:
    lines = [",".join(HEADER)] + [",".join(_quoted(v) for v in row) for row in rows]
    data = (newline.join(lines) + newline).encode("utf-8")
    _read(folder, (b"\xef\xbb\xbf" if bom else b"") + data, devices)


@given(header=st.lists(st.sampled_from([*HEADER, "StudyUID", "", "Instances ", "device"]),
                       max_size=9),
       rows=st.lists(st.just(GOOD_ROW), max_size=3))
@FUZZ
def test_wrong_headers_raise_only_inventory_error(folder: Path, header: list[str],
                                                  rows: list[list[str]]) -> None:
    lines = [",".join(header)] + [",".join(row) for row in rows]
    _read(folder, ("\n".join(lines) + "\n").encode())


def _quoted(value: str) -> str:
    """Sometimes quote a field (with its quotes doubled), as spreadsheets do."""
    if any(c in value for c in ',"\n\r') or len(value) % 3 == 0:
        return '"' + value.replace('"', '""') + '"'
    return value
