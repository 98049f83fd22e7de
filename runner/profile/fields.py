"""The profile's small validated types (AE titles, hosts, ports, paths, formulas, regexes,
DICOM names) and the base model every section is built on.

Relative paths are resolved against the profile's folder, passed as validation context
`{"base_dir": Path}` by `runner.profile.load`; without it they are taken from the working
directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from runner.dicomdict import resolve_tag
from runner.profile.formula import FormulaError, parse_formula


class Section(BaseModel):
    """A section of the profile: unknown keys refused, frozen, keys by name or alias."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def _ae_title(value: str) -> str:
    if not _AE_RE.match(value) or not value.strip():
        raise PydanticCustomError(
            "ae_title",
            "AE title '{value}' is not valid: 1 to 16 characters, printable ASCII without '\\'",
            {"value": value},
        )
    return value.strip()


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_RE.match(value):
        raise PydanticCustomError("host", "'{value}' is not an IP address or host name",
                                  {"value": value})
    return value


def _formula(value: Any) -> str:
    if isinstance(value, bool):
        raise PydanticCustomError("formula", "a formula must be a number or an expression", {})
    try:
        return parse_formula(value).source
    except FormulaError as exc:
        raise PydanticCustomError("formula", "{message}",
                                  {"message": exc.message, "offset": exc.column}) from None


def relative_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if value.is_absolute() or base is None:
        return value
    return Path(os.path.normpath(Path(base) / value))


def existing_file(value: Path) -> Path:
    if not value.is_file():
        raise PydanticCustomError("file_missing", "file not found: {path}", {"path": str(value)})
    return value


def known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "timezone", "unknown time zone '{value}' (an IANA name such as Europe/London)",
            {"value": value}) from None
    return value


def _dicom_name(value: str) -> str:
    try:
        resolve_tag(value)
    except ValueError as exc:
        raise PydanticCustomError("dicom_keyword", "{message}", {"message": str(exc)}) from None
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "regex", "invalid regular expression: {message} at position {pos}",
            {"message": exc.msg, "pos": exc.pos, "offset": exc.pos}) from None
    return value


AETitle = Annotated[str, AfterValidator(_ae_title)]
Host = Annotated[str, Field(min_length=1), AfterValidator(_host)]
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _slug(value: str) -> str:
    if not _SLUG_RE.match(value):
        raise PydanticCustomError(
            "slug", "'{value}' must be lowercase letters, digits and '-' (at most 63)",
            {"value": value})
    return value


Slug = Annotated[str, AfterValidator(_slug)]
FormulaText = Annotated[str | int | float, AfterValidator(_formula)]
ProfilePath = Annotated[Path, AfterValidator(relative_path)]
ExistingFile = Annotated[Path, AfterValidator(relative_path), AfterValidator(existing_file)]
DicomName = Annotated[str, AfterValidator(_dicom_name)]
Regex = Annotated[str, AfterValidator(_regex)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
