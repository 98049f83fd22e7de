"""Reads an inventory CSV into an Inventory, reporting every problem by line and column."""

from __future__ import annotations

import csv
import gc
import io
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import NamedTuple, Protocol

from runner.errors import InventoryError, Problem
from runner.inventory.csv_values import (
    EXPECTED,
    HEADER,
    MAX_UID_CHARS,
    count_problem,
    header_problems,
    is_blank,
    modality_problem,
    parse_date,
    parse_size,
    quoted,
    uid_problem,
)
from runner.inventory.model import Inventory, Study
from runner.profile.tiers import Location

MAX_REPORTED_PROBLEMS = 200

_UID, _DATE, _MODALITY, _INSTANCES, _SIZE, _LOCATION, _DEVICE = range(len(HEADER))
_LOCATIONS = ", ".join(location.value for location in Location)
_UTF8_BOM = b"\xef\xbb\xbf"
# A DICOM UID: components of digits without leading zeros, separated by dots. Measured: one
# fullmatch (0.3 µs) is faster than the equivalent chain of str checks.
_UID_OK = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*").fullmatch
_NO_DATE = date.min  # stands in for a bad value in a row that will be dropped anyway


def read_inventory_csv(path: Path, known_devices: Collection[str] | None = None) -> Inventory:
    """Read an inventory CSV; every problem found is raised at once as an InventoryError.

    Liberal only where it is safe: a UTF-8 byte-order mark, spaces around values, CRLF or
    CR line endings and blank lines are accepted. Empty Instances, SizeMB and Device are
    unknown (None). A wrong header stops the reading: rows cannot be trusted under it.
    """
    text = _read_text(path)
    parser = _RowParser(known_devices)
    with _no_cyclic_gc():
        parser.read(csv.reader(io.StringIO(text, newline="")))
    if parser.found:
        raise InventoryError(_located_problems(str(path), text, parser))
    return Inventory(tuple(parser.studies), origin=f"csv:{path}")


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cycle collector while a million studies are created (none is garbage).

    Measured on 1M rows: about 20% of the reading time went to collections that could
    find nothing. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---- the file as text -------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8 (without a BOM), or an InventoryError naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _file_error(path, "inventory file not found") from None
    except OSError as exc:
        raise _file_error(path, f"inventory file cannot be read: {exc.strerror or exc}") from None
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _decode_error(path, data, exc) from None


def _file_error(path: Path, message: str) -> InventoryError:
    return InventoryError([Problem(str(path), 1, 1, message)])


def _decode_error(path: Path, data: bytes, exc: UnicodeDecodeError) -> InventoryError:
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
    message = (
        f"inventory file is not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be read); "
        "save it as UTF-8 CSV"
    )
    return InventoryError([Problem(str(path), line, column, message)])


# ---- rows to studies --------------------------------------------------------------------


class _Reader(Protocol):
    """What the parser uses of csv.reader."""

    @property
    def line_num(self) -> int: ...

    def __iter__(self) -> _Reader: ...

    def __next__(self) -> list[str]: ...


class _Found(NamedTuple):
    """A problem before its column is known: the record's lines and the field's index."""

    line: int
    last_line: int
    field: int
    message: str


class _RowParser:
    """Turns CSV rows into studies, collecting problems; caches repeated field values."""

    def __init__(self, known_devices: Collection[str] | None) -> None:
        self.known_devices = None if known_devices is None else frozenset(known_devices)
        self.studies: list[Study] = []
        self.found: list[_Found] = []
        self.count = 0
        self.first_line: dict[str, int] = {}
        self.dates: dict[str, date] = {}
        self.modalities: dict[str, str] = {}
        self.instances: dict[str, int | None] = {"": None}
        self.sizes: dict[str, float | None] = {"": None}
        self.locations: dict[str, Location] = {loc.value: loc for loc in Location}
        self.devices: dict[str, str | None] = {"": None}
        if self.known_devices is not None:
            self.devices.update((device, device) for device in self.known_devices)

    def problem(self, line: int, last_line: int, field: int, message: str) -> None:
        self.count += 1
        if len(self.found) <= MAX_REPORTED_PROBLEMS:
            self.found.append(_Found(line, last_line, field, message))

    def read(self, reader: _Reader) -> None:
        """Reads every row; a CSV-level error is a problem and reading goes on after it."""
        if self.header(reader):
            while not self.rows(reader):
                pass

    def header(self, reader: _Reader) -> bool:
        """Checks the header (after any blank lines); True when the rows can be read."""
        try:
            for row in reader:
                if is_blank(row):
                    continue
                names = [name.strip() for name in row]
                line = reader.line_num
                for field, message in header_problems(names):
                    self.problem(line, line, field, message)
                return not self.found
        except csv.Error as exc:
            self.problem(reader.line_num, reader.line_num, 0, f"not valid CSV: {exc}")
            return False
        self.problem(1, 1, 0, f"inventory file is empty; expected the header {EXPECTED}")
        return False

    def rows(self, reader: _Reader) -> bool:
        """The hot loop, kept in one function: with a million rows every lookup counts.

        Repeated values (dates, codes, counts, sizes, devices) are checked once and then
        found in a cache; only their first occurrence, or a bad one, takes the slow path.
        Returns False after a CSV-level error (recorded), for the caller to go on.
        """
        dates, modalities, locations = self.dates.get, self.modalities.get, self.locations.get
        instances_of, sizes_of, devices_of = self.instances, self.sizes, self.devices
        first_line, add_study, plain_uid = self.first_line.setdefault, self.studies.append, _UID_OK
        fields, previous = len(HEADER), reader.line_num
        try:
            for row in reader:
                line, previous = previous + 1, reader.line_num
                if len(row) != fields:
                    self.odd_row(row, line, previous)
                    continue
                count = self.count
                uid_text, date_text, modality_text, instances_text, size_text, where, device = row
                uid = uid_text.strip()
                if len(uid) > MAX_UID_CHARS or plain_uid(uid) is None:
                    self.problem(line, previous, _UID, uid_problem(uid))
                elif (first := first_line(uid, line)) != line:
                    self.duplicate(uid, first, line, previous)
                study_date = dates(date_text) or self.new_date(date_text, line, previous)
                modality = modalities(modality_text) or self.new_modality(
                    modality_text, line, previous
                )
                try:
                    instances = instances_of[instances_text]
                except KeyError:
                    instances = self.new_instances(instances_text, line, previous)
                try:
                    size = sizes_of[size_text]
                except KeyError:
                    size = self.new_size(size_text, line, previous)
                location = locations(where) or self.new_location(where, line, previous)
                try:
                    device_id = devices_of[device]
                except KeyError:
                    device_id = self.new_device(device, line, previous)
                if count == self.count:
                    add_study(
                        Study(uid, study_date, modality, instances, size, location, device_id)
                    )
            return True
        except csv.Error as exc:
            self.problem(previous + 1, reader.line_num, 0, f"not valid CSV: {exc}")
            return False

    def odd_row(self, row: list[str], line: int, last_line: int) -> None:
        if is_blank(row):
            return
        field = min(len(row), len(HEADER))
        self.problem(
            line,
            last_line,
            field,
            f"row has {len(row)} fields, expected {len(HEADER)} ({EXPECTED})",
        )

    def duplicate(self, uid: str, first: int, line: int, last_line: int) -> None:
        message = f"duplicate StudyInstanceUID {quoted(uid)}; first on line {first}"
        self.problem(line, last_line, _UID, message)

    def new_date(self, text: str, line: int, last_line: int) -> date | None:
        value = text.strip()
        if not value:
            return None  # a study the source holds without a Study Date: planned as undated
        parsed = parse_date(value)
        if isinstance(parsed, str):
            self.problem(line, last_line, _DATE, parsed)
            return _NO_DATE
        self.dates[text] = parsed
        return parsed

    def new_modality(self, text: str, line: int, last_line: int) -> str:
        value = text.strip()
        message = modality_problem(value)
        if message:
            self.problem(line, last_line, _MODALITY, message)
            return value
        self.modalities[text] = value
        return value

    def new_instances(self, text: str, line: int, last_line: int) -> int | None:
        value = text.strip()
        if not value:
            self.instances[text] = None
            return None
        if not (value.isascii() and value.isdigit()):
            self.problem(line, last_line, _INSTANCES, count_problem("Instances", value))
            return None
        count = int(value)
        self.instances[text] = count
        return count

    def new_size(self, text: str, line: int, last_line: int) -> float | None:
        value = text.strip()
        size = parse_size(value)
        if isinstance(size, str):
            self.problem(line, last_line, _SIZE, size)
            return None
        self.sizes[text] = size
        return size

    def new_location(self, text: str, line: int, last_line: int) -> Location:
        value = text.strip()
        if value not in self.locations:
            message = f"unknown Location {quoted(value)}; expected one of: {_LOCATIONS}"
            self.problem(line, last_line, _LOCATION, message)
            return Location.OFFLINE
        location = self.locations[value]
        self.locations[text] = location
        return location

    def new_device(self, text: str, line: int, last_line: int) -> str | None:
        value = text.strip()
        known = self.known_devices
        if value and known is not None and value not in known:
            names = ", ".join(sorted(known)) or "(none)"
            message = f"unknown Device {quoted(value)}; the profile's devices are: {names}"
            self.problem(line, last_line, _DEVICE, message)
            return None
        device = value or None
        self.devices[text] = device
        return device


# ---- from found problems to located ones -----------------------------------------------------


def _located_problems(path: str, text: str, parser: _RowParser) -> list[Problem]:
    """The first problems with their columns, and a last line saying how many were left out."""
    lines = io.StringIO(text, newline="").readlines()
    shown = parser.found[:MAX_REPORTED_PROBLEMS]
    problems = [Problem(path, *_locate(lines, found), found.message) for found in shown]
    left_out = parser.count - len(shown)
    if left_out:
        line, column = _locate(lines, parser.found[len(shown)])
        message = f"... and {left_out} more problems (only the first {len(shown)} are listed)"
        problems.append(Problem(path, line, column, message))
    return problems


def _locate(lines: list[str], found: _Found) -> tuple[int, int]:
    """The physical line and 1-based column where the problem's field starts."""
    record = lines[found.line - 1 : found.last_line]
    text = "".join(record)
    starts = field_starts(text)
    offset = starts[found.field] if found.field < len(starts) else len(text.rstrip("\r\n"))
    for index, physical in enumerate(record):
        if offset < len(physical) or index == len(record) - 1:
            return found.line + index, offset + 1
        offset -= len(physical)
    return found.line, 1


def field_starts(text: str) -> list[int]:
    """Where each field of a CSV record starts, following the csv module's default dialect."""
    starts = [0]
    state = "start"
    for index, char in enumerate(text):
        if state == "quoted":
            state = "quote in quoted" if char == '"' else "quoted"
        elif char == ",":
            starts.append(index + 1)
            state = "start"
        elif char == '"' and state in ("start", "quote in quoted"):
            state = "quoted"
        else:
            state = "unquoted"
    return starts
