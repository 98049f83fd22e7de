"""The inventory CSV's header and the checks of its single values: each returns the value or
says, for a person, why it is not one (runner.inventory.csv_reader locates the problems)."""

from __future__ import annotations

import difflib
import math
from datetime import date

HEADER: tuple[str, ...] = (
    "StudyInstanceUID",
    "StudyDate",
    "Modality",
    "Instances",
    "SizeMB",
    "Location",
    "Device",
)
MAX_UID_CHARS = 64
MAX_MODALITY_CHARS = 16
EXPECTED = ",".join(HEADER)
_MODALITY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ ")


# ---- checks of single values --------------------------------------------------------------


def is_blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def quoted(value: str) -> str:
    """A value from the file, quoted, escaped and shortened for a message."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def uid_problem(uid: str) -> str:
    """Why `uid` is not a DICOM UID (called only when the fast check failed)."""
    if not uid:
        return "empty StudyInstanceUID"
    shown = quoted(uid)
    if len(uid) > MAX_UID_CHARS:
        return f"StudyInstanceUID {shown} is {len(uid)} characters long; at most 64 are allowed"
    if not (uid.isascii() and uid.replace(".", "").isdigit()):
        return f"StudyInstanceUID {shown} may contain only digits and dots"
    if "" in uid.split("."):
        return f"StudyInstanceUID {shown} has an empty component (a dot at an end, or two dots)"
    return (
        f"StudyInstanceUID {shown} has a component with a leading zero "
        "(only the component 0 itself may start with 0)"
    )


def parse_date(value: str) -> date | str:
    """A StudyDate, or why it is not one."""
    if len(value) != 8 or not (value.isascii() and value.isdigit()):
        return f"StudyDate {quoted(value)} is not 8 digits (YYYYMMDD)"
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return f"StudyDate {quoted(value)} is not a real calendar date"


def modality_problem(value: str) -> str | None:
    """Why `value` is not a Modality (DICOM codes, several separated by backslashes)."""
    if not value:
        return "empty Modality"
    for code in value.split("\\"):
        if not code or len(code) > MAX_MODALITY_CHARS or not _MODALITY_CHARS.issuperset(code):
            return (
                f"Modality {quoted(value)} is not a DICOM modality code "
                "(upper-case letters, digits and '_', at most 16 characters, e.g. CT)"
            )
    return None


def count_problem(name: str, value: str) -> str:
    if value.startswith("-") and value[1:].isdigit():
        return f"{name} {quoted(value)} must not be negative"
    return f"{name} {quoted(value)} is not a whole number"


def parse_size(value: str) -> float | str | None:
    """A SizeMB (None when empty), or why it is not one."""
    if not value:
        return None
    try:
        size = float(value) if value.isascii() and "_" not in value else None
    except ValueError:
        size = None
    if size is None:
        return f"SizeMB {quoted(value)} is not a number"
    if not math.isfinite(size):
        return f"SizeMB {quoted(value)} is not a finite number"
    if size < 0:
        return f"SizeMB {quoted(value)} must not be negative"
    return size + 0.0  # -0.0 becomes 0.0


# ---- the header ---------------------------------------------------------------------------


def header_problems(names: list[str]) -> list[tuple[int, str]]:
    """Each problem of the header as (field index, message); empty when it is right."""
    if tuple(names) == HEADER:
        return []
    expected = f"; expected the header {EXPECTED}"
    missing = [name for name in HEADER if name not in names]
    problems: list[tuple[int, str]] = []
    for field, name in enumerate(names):
        if name in HEADER:
            continue
        guess = _closest(name, missing)
        if guess:
            missing.remove(guess)
            problems.append((field, f"header column {quoted(name)} should be {guess!r}{expected}"))
        else:
            problems.append((field, f"unexpected header column {quoted(name)}{expected}"))
    if missing:
        problems.append((len(names), f"header is missing {', '.join(missing)}{expected}"))
    if not problems:
        field = next(i for i, name in enumerate(names) if i >= len(HEADER) or name != HEADER[i])
        problems.append((field, f"header columns are repeated or out of order{expected}"))
    return problems


def _closest(name: str, candidates: list[str]) -> str | None:
    folded = name.casefold().replace(" ", "").replace("_", "")
    for candidate in candidates:
        if candidate.casefold() == folded:
            return candidate
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return close[0] if close else None
