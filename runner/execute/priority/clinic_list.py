"""The priority lane's clinic list: a CSV of patients and dates (tomorrow's clinics), read
again whenever it changes while a run goes on.

Header row first, in any order: `patient_id` and `date` (YYYY-MM-DD or YYYYMMDD) required,
`modality`, `issuer`, `body_part` optional. UTF-8 (a byte-order mark is fine), blank lines
skipped. A bad row does not stop the migration: it is reported by file:line:column and the
good rows are served. The same row read again is the same request (served once).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from runner.errors import Problem
from runner.execute.priority.finder import has_wildcards
from runner.inventory.csv_reader import field_starts
from runner.plan.priority import PriorityRequest, Trigger

REQUIRED = ("patient_id", "date")
OPTIONAL = ("modality", "issuer", "body_part")


@dataclass(frozen=True, slots=True)
class ClinicRead:
    """The requests of one reading and the problems found in it."""

    requests: list[PriorityRequest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_clinic_list(path: Path, received_at: datetime) -> ClinicRead:
    """Every usable row as a request; the rest as problems (a missing file: nothing)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return ClinicRead()
    except OSError as exc:
        return ClinicRead(problems=[Problem(str(path), 1, 1, f"cannot be read: "
                                                           f"{exc.strerror or exc}")])
    except UnicodeDecodeError as exc:
        return ClinicRead(problems=[Problem(str(path), 1, 1, f"is not UTF-8 text "
                                                           f"(byte {exc.start})")])
    lines = io.StringIO(text, newline="").readlines()
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None:
        return ClinicRead()
    names = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        return ClinicRead(problems=[Problem(str(path), 1, 1, f"the header must name "
                                            f"{', '.join(REQUIRED)}; missing: "
                                            f"{', '.join(missing)}")])
    read = ClinicRead()
    for record in rows:
        if not any(value.strip() for value in record):
            continue
        line = rows.line_num
        values = {name: (record[i].strip() if i < len(record) else "")
                  for i, name in enumerate(names)}
        problem = _row_problem(values)
        if problem is not None:
            name, message = problem
            read.problems.append(Problem(str(path), line, _column(lines, line, names.index(name)),
                                         message))
            continue
        read.requests.append(PriorityRequest(
            Trigger.CSV, values["patient_id"], received_at, values.get("issuer", ""),
            _date(values["date"]), values.get("modality", "").upper(),
            values.get("body_part", "").upper(),
            reference="|".join(values.get(n, "") for n in (*REQUIRED, *OPTIONAL)),
            event=f"{path.name} line {line}"))
    return read


def _row_problem(values: dict[str, str]) -> tuple[str, str] | None:
    patient = values["patient_id"]
    if not patient:
        return "patient_id", "patient_id is empty"
    if has_wildcards(patient):
        return "patient_id", "patient_id has wildcard characters (* ? \\)"
    if _date(values["date"]) is None:
        return "date", f"date '{values['date']}' is not a date (YYYY-MM-DD or YYYYMMDD)"
    return None


def _date(text: str) -> date | None:
    digits = text.replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _column(lines: list[str], line: int, index: int) -> int:
    starts = field_starts(lines[line - 1]) if line - 1 < len(lines) else [0]
    return (starts[index] if index < len(starts) else 0) + 1


class ClinicList:
    """The clinic list as a poller of the lane: read when its size or time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None

    def read_if_changed(self, now: datetime) -> ClinicRead:
        """The list's requests if it changed since the last reading, else nothing."""
        try:
            stat = os.stat(self.path)
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp == self._seen:
            return ClinicRead()
        self._seen = stamp
        return read_clinic_list(self.path, now)
