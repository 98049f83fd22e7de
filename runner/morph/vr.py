"""What each value representation allows: the value checks shared by compile time and run time."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pydicom.datadict import dictionary_has_tag, dictionary_VM

# Text VRs whose bytes follow the dataset's Specific Character Set.
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
# Text VRs restricted to the default repertoire.
ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
INT_RANGES = {"US": (0, 0xFFFF), "SS": (-0x8000, 0x7FFF), "UL": (0, 0xFFFFFFFF),
              "SL": (-(2**31), 2**31 - 1), "UV": (0, 2**64 - 1), "SV": (-(2**63), 2**63 - 1)}
FLOAT_VRS = frozenset({"FL", "FD"})
NUMBER_VRS = frozenset(INT_RANGES) | FLOAT_VRS
TEXT_VRS = CHARSET_VRS | ASCII_VRS
# VRs whose values the engine can read and write as text.
VALUE_VRS = TEXT_VRS | NUMBER_VRS
# Numbers written as text; compared as numbers in conditions.
NUMERIC_VRS = NUMBER_VRS | {"IS", "DS"}
# Free text: one value that may contain backslashes, leading spaces significant.
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})

_MAX_CHARS = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
              "LT": 10240, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}
_TM = r"([01]\d|2[0-3])([0-5]\d((60|[0-5]\d)(\.\d{1,6})?)?)?"
_PATTERNS = {
    "AE": (r"[\x20-\x5b\x5d-\x7e]*", "printable ASCII"),
    "AS": (r"\d{3}[DWMY]", "an age such as 045Y"),
    "CS": (r"[A-Z0-9 _]*", "upper-case letters, digits, space and underscore"),
    "DA": (r"\d{8}", "a date YYYYMMDD"),
    "DS": (r" *[+\-]?(\d+|\d+\.\d*|\.\d+)([eE][+\-]?\d+)? *", "a decimal number"),
    "DT": (r"\d{4}((0[1-9]|1[0-2])((0[1-9]|[12]\d|3[01])" + _TM + r"?)?)?([+\-]\d{4})?",
           "a date-time YYYYMMDDHHMMSS.FFFFFF&ZZXX"),
    "IS": (r" *[+\-]?\d+ *", "a whole number"),
    "TM": (_TM, "a time HHMMSS.FFFFFF"),
    "UI": (r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*", "a UID: digits in dot-separated components"),
    "UR": (r"[A-Za-z_\d:/?#\[\]@!$&'()*+,;=%\-.~]*", "a URI"),
}
_COMPILED = {vr: (re.compile(p), what) for vr, (p, what) in _PATTERNS.items()}
# ESC included: in decoded text it is never legitimate (escape sequences belong to the
# encoding, and pydicom writes them itself for ISO 2022 character sets).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FREE_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def strip_padding(vr: str, text: str) -> str:
    """A value without its DICOM padding: trailing spaces and NULs, leading spaces too
    except where they are significant (free text)."""
    text = text.rstrip(" \x00")
    return text if vr in FREE_TEXT_VRS or vr == "UC" else text.lstrip(" ")


def split_values(vr: str, text: str) -> tuple[str, ...]:
    """An element's text as its values (empty text: no values), each without padding."""
    if vr in FREE_TEXT_VRS:
        text = strip_padding(vr, text)
        return (text,) if text else ()
    if not text.strip(" \x00"):
        return ()
    return tuple(strip_padding(vr, part) for part in text.split("\\"))


def number_text(value: int | float) -> str:
    """A number as the text the engine compares and rewrites."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def value_problem(vr: str, value: str) -> str | None:
    """Why `value` is not a valid single value for `vr` ("it is ..."), or None.

    The reason never quotes the value: run-time values may identify a patient.
    """
    if vr in NUMBER_VRS:
        return _number_problem(vr, value)
    if "\\" in value and vr not in FREE_TEXT_VRS:
        return "it contains a backslash, the DICOM value separator"
    control = _FREE_TEXT_CONTROL if vr in FREE_TEXT_VRS else _CONTROL
    if control.search(value):
        return f"it contains a control character, not allowed in {vr}"
    return _pattern_problem(vr, value) or _length_problem(vr, value) or _meaning_problem(vr, value)


def _length_problem(vr: str, value: str) -> str | None:
    limit = _MAX_CHARS.get(vr)
    if limit is not None and len(value) > limit:
        return f"it is longer than {limit} characters, the maximum for {vr}"
    return None


def _pattern_problem(vr: str, value: str) -> str | None:
    if vr == "PN":
        return _person_name_problem(value)
    if vr not in _COMPILED or not value:
        return None
    pattern, what = _COMPILED[vr]
    if pattern.fullmatch(value):
        return None
    return f"it is not {what}, as {vr} requires"


def _meaning_problem(vr: str, value: str) -> str | None:
    if vr == "DA" and value:
        try:
            date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        except ValueError:
            return "it is not a calendar date"
    if vr == "IS" and value and not -(2**31) <= int(value) < 2**31:
        return "it is outside the IS range (a signed 32-bit number)"
    return None


def _person_name_problem(value: str) -> str | None:
    groups = value.split("=")
    if len(groups) > 3:
        return f"it has {len(groups)} component groups; a person name has at most 3"
    if any(len(group) > 64 for group in groups):
        return "it has a component group longer than 64 characters"
    if any(len(group.split("^")) > 5 for group in groups):
        return "it has more than 5 name components"
    return None


def _number_problem(vr: str, value: str) -> str | None:
    try:
        number: float = float(value) if vr in FLOAT_VRS else int(value.strip())
    except ValueError:
        kind = "a number" if vr in FLOAT_VRS else "a whole number"
        return f"it is not {kind}, as {vr} requires"
    if vr in INT_RANGES:
        low, high = INT_RANGES[vr]
        if not low <= number <= high:
            return f"it is outside the {vr} range {low} to {high}"
    return None


def count_problem(tag: int, count: int) -> str | None:
    """Why `count` values do not fit the tag's value multiplicity, or None."""
    if count == 0 or not dictionary_has_tag(tag):
        return None
    vm = str(dictionary_VM(tag))
    low, high, step = _multiplicity(vm)
    if low <= count <= high and count % step == 0:
        return None
    return f"{count} values do not fit the value multiplicity {vm}"


def _multiplicity(vm: str) -> tuple[int, float, int]:
    """`"1"`, `"1-3"`, `"1-n"`, `"2-2n"` as (minimum, maximum, step) counts."""
    low_text, _, high_text = vm.partition("-")
    low = int(low_text) if low_text.isdigit() else 1
    if not high_text:
        return low, low, 1
    if high_text.endswith("n"):
        step = high_text[:-1]
        return low, float("inf"), int(step) if step.isdigit() else 1
    return (low, int(high_text), 1) if high_text.isdigit() else (low, float("inf"), 1)


def element_value(vr: str, values: tuple[str, ...]) -> Any:
    """Checked text values as the Python value pydicom stores for `vr`."""
    if vr in NUMBER_VRS:
        numbers = [float(v) if vr in FLOAT_VRS else int(v.strip()) for v in values]
        return None if not numbers else numbers[0] if len(numbers) == 1 else numbers
    if vr in FREE_TEXT_VRS or len(values) <= 1:
        return values[0] if values else ""
    return list(values)
