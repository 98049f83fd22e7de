"""The site profile as typed, frozen pydantic models: every key, its meaning and its limits.

Relative paths are resolved against the profile's folder, passed as validation context
`{"base_dir": Path}` by `runner.profile.load`; without it they are taken from the working
directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from runner.morph import RuleSet

from runner.inventory.model import Location
from runner.profile.checks import concurrency_order, cross_field_problems, date_order
from runner.profile.dicomtags import resolve_tag
from runner.profile.formula import FormulaError, parse_formula


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- small validated types -------------------------------------------------------------

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


def _relative_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if value.is_absolute() or base is None:
        return value
    return Path(os.path.normpath(Path(base) / value))


def _existing_file(value: Path) -> Path:
    if not value.is_file():
        raise PydanticCustomError("file_missing", "file not found: {path}", {"path": str(value)})
    return value


def _timezone(value: str) -> str:
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
ProfilePath = Annotated[Path, AfterValidator(_relative_path)]
ExistingFile = Annotated[Path, AfterValidator(_relative_path), AfterValidator(_existing_file)]
DicomName = Annotated[str, AfterValidator(_dicom_name)]
Regex = Annotated[str, AfterValidator(_regex)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# --- sections ---------------------------------------------------------------------------


class Site(_Model):
    """Who the migration is for; `id` names the reports folder and the ledger."""

    id: Slug = Field(description="slug [a-z0-9-]; names reports/<id>/ and the ledger")
    name: str = Field(min_length=1)
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        "UTC", description="IANA time zone the schedule is read in")


class Tls(_Model):
    """DICOM TLS for one side of a connection (PEM files)."""

    certificate: ExistingFile
    key: ExistingFile
    ca: ExistingFile | None = Field(None, description="CA bundle to verify the peer")
    require_client_certificate: bool = Field(False, description="mutual TLS (listener only)")


class Listener(_Model):
    """The runner's own C-STORE SCP that source devices C-MOVE into."""

    ae_title: AETitle
    host: Host = "0.0.0.0"
    port: Port
    spool_dir: ProfilePath
    max_spool_gb: float = Field(20.0, gt=0, description="back-pressure threshold")
    max_associations: int = Field(16, ge=1, le=256)
    tls: Tls | None = None


class DeviceLimits(_Model):
    """What one device can bear, for the forecast (tiering.* gives the defaults for all)."""

    mb_per_s: float | None = Field(
        None, gt=0, description="MB/s the device delivers across all its retrieves at once "
                                "(they share it; default tiering.device_total_mb_per_s)")
    lockup_backlog_mb: float | None = Field(
        None, gt=0, description="the device locks up when the MB it has been asked for and "
                                "not yet delivered pass this (default "
                                "tiering.lockup_backlog_mb)")
    lockup_minutes: float | None = Field(
        None, ge=0, description="how long a lock-up stops the device, until retrieves flow "
                                "again (default tiering.lockup_minutes)")


class Device(_Model):
    """One DICOM device of the old PACS that answers C-FIND and C-MOVE."""

    id: Slug
    ae_title: AETitle
    host: Host
    port: Port
    throttle: str | None = Field(None, description="pins this device to one throttle")
    tls: Tls | None = None
    store_ae_titles: list[AETitle] = Field(
        default_factory=list,
        description="the AE titles this device's C-MOVE sub-operations (C-STOREs) come "
                    "from, when not its own `ae_title` (some archives store from another AE)")
    limits: DeviceLimits = Field(default_factory=DeviceLimits,
                                 description="what the device bears (forecast)")

    def storing_aes(self) -> frozenset[str]:
        """The calling AE titles the listener accepts this device's instances from."""
        return frozenset(self.store_ae_titles or [self.ae_title])


class InventoryQuery(_Model):
    """How the live inventory is taken by C-FIND."""

    from_: date = Field(alias="from")
    to: date | Literal["today"] = "today"
    window_days: int = Field(30, ge=1, le=3660)
    modalities: list[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}$")]] = []
    max_results: int = Field(
        1000, ge=1, description="a window answering this many studies or more is split")
    census: Literal["full", "windows"] = Field(
        "full", description="full: the date windows, then a sweep with any Study Date "
                            "(split by Patient ID prefix) that finds undated, malformed-dated "
                            "and out-of-window studies and detects a source that caps its "
                            "answers silently; windows: the date windows only")
    undated: Literal["plan", "exclude"] = Field(
        "plan", description="studies without a usable Study Date: planned (after the dated "
                            "ones of their tier), or excluded with that reason")
    exclude: ExistingFile | None = Field(
        None, description="CSV of studies excluded on purpose: StudyInstanceUID[,Reason]")
    instance_counts: Literal["auto", "series", "image"] = Field(
        "auto", description="where each study's instance count comes from: auto (the "
                            "study-level answer, else a SERIES-level query), series, or image "
                            "(an IMAGE-level query per study: exact, slow)")

    def end_date(self, today: date) -> date:
        """The last day of the inventory, with "today" resolved."""
        return today if self.to == "today" else self.to

    @model_validator(mode="after")
    def _from_before_to(self) -> InventoryQuery:
        message = date_order(self.from_, self.to)
        if message:
            raise PydanticCustomError("date_order", "{message}",
                                      {"message": message, "field": "from"})
        return self


class Health(_Model):
    """How a stalled retrieve and a failing device are noticed, and when a device is retried."""

    stall_timeout: float = Field(
        300, gt=0, le=86400,
        description="seconds without progress (pending response or instance) before a "
                    "retrieve is aborted and its study queued again")
    down_after: int = Field(3, ge=1, le=100, description="failed retrieves in a row that "
                                                         "mark a device down")
    probe_seconds: float = Field(30, gt=0, le=3600,
                                 description="first C-ECHO probe of a down device; doubles")
    probe_max_seconds: float = Field(600, gt=0, le=86400)


class Source(_Model):
    """The old PACS: its devices and how it is inventoried."""

    name: str = Field(min_length=1)
    devices: list[Device] = Field(min_length=1)
    calling_ae_title: AETitle
    inventory: InventoryQuery
    health: Health = Field(default_factory=Health)
    balance_devices: bool = Field(
        False, description="true when the devices front one archive and any of them can "
                           "retrieve any study: studies are spread over the devices by "
                           "planned MB (else each is retrieved from the device whose census "
                           "answer found it)")


class Alert(_Model):
    """Who is told at once when a device goes down or comes back (no patient data is sent)."""

    command: list[str] | None = Field(
        None, min_length=1, description="program and arguments; the event is in the "
                                        "environment: PACSMIG_EVENT, PACSMIG_DEVICE, ...")
    webhook: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = Field(
        None, description="URL that receives a JSON POST")


VerifyMethod = Literal["instances", "counts", "commitment"]
ConflictPolicy = Literal["quarantine", "skip", "overwrite"]


class Destination(_Model):
    """The new archive (VNA or PACS) that receives the migrated instances."""

    name: str = Field(min_length=1)
    ae_title: AETitle
    host: Host
    port: Port
    max_associations: int = Field(4, ge=1, le=64)
    verify: VerifyMethod = "instances"
    tls: Tls | None = None
    verify_sample: Annotated[int, Field(ge=1)] | Annotated[float, Field(gt=0, lt=1)] | None = \
        Field(None, description="pacsmig verify reads this many stored instances (a count, or "
                                "a fraction below 1) back from the destination and from the "
                                "source and compares them: every attribute and the pixel data")
    conflicts: ConflictPolicy = Field(
        "quarantine",
        description="when the destination already holds a SOP Instance UID of a study under "
                    "another series or another study, or the study under another Patient "
                    "ID: quarantine (send nothing of the study, list the conflict), skip "
                    "(keep the destination's copy of instances in another series of the "
                    "study, send the rest), overwrite "
                    "(send anyway)")


class Throttle(_Model):
    """How hard one device may be pushed while this throttle is in force."""

    max_concurrent_retrieves: int = Field(ge=1, le=64)
    min_concurrent_retrieves: int = Field(1, ge=0, le=64)
    delay_seconds: FormulaText = Field(
        0, description="wait before each retrieve above the minimum (formula)")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Throttle:
        message = concurrency_order(self.min_concurrent_retrieves,
                                    self.max_concurrent_retrieves)
        if message:
            raise PydanticCustomError("min_above_max", "{message}",
                                      {"message": message, "field": "min_concurrent_retrieves"})
        return self


_HOURS_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _minutes(hh: str, mm: str) -> int:
    h, m = int(hh), int(mm)
    if m > 59 or h > 24 or (h == 24 and m):
        raise ValueError
    return h * 60 + m


def parse_hours(text: str) -> tuple[int, int]:
    """`"HH:MM-HH:MM"` as minutes since midnight (start, end); end may wrap past midnight."""
    m = _HOURS_RE.match(text.strip())
    try:
        if not m:
            raise ValueError
        start, end = _minutes(m[1], m[2]), _minutes(m[3], m[4])
    except ValueError:
        raise PydanticCustomError(
            "hours", "hours '{value}' must be HH:MM-HH:MM, e.g. 08:00-18:00 or 20:00-06:00",
            {"value": text}) from None
    if start == end:
        raise PydanticCustomError("hours", "hours '{value}' is an empty range", {"value": text})
    return start, end


def _hours(value: str) -> str:
    parse_hours(value)
    return value.strip()


class ScheduleEntry(_Model):
    """One slot of the weekly schedule; an entry without days/hours matches any time."""

    days: list[Day] | None = None
    hours: Annotated[str, AfterValidator(_hours)] | None = None
    throttle: str

    @property
    def minutes(self) -> tuple[int, int] | None:
        """The hours as minutes since midnight, or None for all day."""
        return parse_hours(self.hours) if self.hours else None


class Tiering(_Model):
    """Where studies live on the source and the order of phases that keeps total work down."""

    location: str = Field(
        "instance-availability",
        description='"instance-availability" or "csv:PATH" (StudyInstanceUID,Location)')
    by_date: date | None = Field(
        None, description="a cut-off date (quote it: 'YYYY-MM-DD'): studies dated before it "
                          "are nearline, from it on local; for a source that answers no "
                          "InstanceAvailability and has no location CSV (replaces what "
                          "InstanceAvailability says; not with location csv:)")
    local_store_gb: float = Field(0, ge=0, description="capacity of the local store (forecasts)")
    order: list[Location] = Field(default_factory=lambda: [Location.LOCAL, Location.NEARLINE,
                                                           Location.OFFLINE], min_length=1)
    low_water_fraction: float | None = Field(
        None, gt=0, le=1, description="forecast: push-off target of the local store "
                                      "(default 0.9)")
    nearline_mb_per_s: float | None = Field(None, gt=0,
                                            description="forecast: recall speed (default 10)")
    device_mb_per_s: float | None = Field(
        None, gt=0, description="forecast: speed of one retrieve (default 20)")
    device_total_mb_per_s: float | None = Field(
        None, gt=0, description="forecast: MB/s a device delivers across all its retrieves "
                                "(default 40; per device: source.devices[].limits.mb_per_s)")
    lockup_backlog_mb: float | None = Field(
        None, gt=0, description="forecast: a device locks up when the MB asked of it and not "
                                "yet delivered pass this (default 2000)")
    lockup_minutes: float | None = Field(
        None, ge=0, description="forecast: how long a lock-up stops a device (default 60)")
    new_studies_per_day: float | None = Field(
        None, ge=0, description="forecast: new clinical studies a day (default: the "
                                "inventory's last 90 days)")
    new_mb_per_day: float | None = Field(None, ge=0, description="forecast: their MB a day")
    clinical_reads_per_day: float | None = Field(
        None, ge=0, description="forecast: reads of recent studies a day (default: as many "
                                "as new studies)")
    by_tier: bool = Field(
        True, description="one phase per tier in `order` (true), or a single phase of every "
                          "study oldest first, whatever its tier (false: oldest-first, the "
                          "strategy the tier order improves on; for comparisons)")

    @field_validator("location")
    @classmethod
    def _location_source(cls, value: str, info: ValidationInfo) -> str:
        if value == "instance-availability":
            return value
        if not value.startswith("csv:") or len(value) == 4:
            raise PydanticCustomError(
                "location", "location must be 'instance-availability' or 'csv:PATH'", {})
        path = _relative_path(Path(value[4:]), info)
        _existing_file(path)
        return f"csv:{path}"

    @model_validator(mode="after")
    def _one_source_of_tiers(self) -> Tiering:
        if self.by_date is not None and self.location != "instance-availability":
            raise PydanticCustomError(
                "by_date", "by_date and a location CSV both say where studies live: keep one",
                {})
        return self

    @field_validator("order")
    @classmethod
    def _unique(cls, value: list[Location]) -> list[Location]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("duplicate", "a tier appears twice in order", {})
        return value

    @property
    def phases(self) -> tuple[Location, ...]:
        """Every tier, the named ones first in their order, the others after."""
        rest = [loc for loc in Location if loc not in self.order]
        return (*self.order, *rest)


class Redate(_Model):
    """Keeping clinically recent studies on the local store while the migration runs."""

    recent_days: int = Field(14, ge=0, le=3660, description="0 switches re-dating off")
    every_hours: float = Field(6, gt=0, le=24 * 30)
    headroom_fraction: float = Field(
        0.5, ge=0, le=1,
        description="a round also starts when the MB recalled into the local store since the "
                    "last round reach this fraction of its headroom (the store less the "
                    "recent studies): recent studies are refreshed before recalls push them "
                    "off; 0: every_hours alone")


# --- morphing ---------------------------------------------------------------------------

ConditionValue = str | int | float | list[str | int | float]


class MatchCondition(_Model):
    """A condition other than equality: a regular expression, or presence."""

    matches: Regex | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> MatchCondition:
        if (self.matches is None) == (self.exists is None):
            raise PydanticCustomError(
                "condition", "a condition needs exactly one of 'matches' or 'exists'", {})
        return self


Condition = Annotated[ConditionValue | MatchCondition, Field(union_mode="left_to_right")]


class ReplaceSpec(_Model):
    """Rewrite a value by regular expression (groups as \\1)."""

    tag: DicomName
    pattern: Regex
    with_: str = Field(alias="with")


class MapSpec(_Model):
    """Map a value through a CSV lookup table with columns `from,to`."""

    tag: DicomName
    table: ExistingFile
    missing: Literal["keep", "fail", "blank"] = "keep"


class CopySpec(_Model):
    """Copy one attribute's value into another."""

    from_: DicomName = Field(alias="from")
    to: DicomName


_ACTIONS = ("set", "delete", "replace", "map", "copy", "remove_private", "remove_groups")


class MorphRule(_Model):
    """One rule: an optional condition (`when`) and exactly one action."""

    when: dict[DicomName, Condition] | None = None
    set_: dict[DicomName, str | int | float | list[str | int | float] | None] | None = Field(
        None, alias="set")
    delete: list[DicomName] | None = None
    replace: ReplaceSpec | None = None
    map: MapSpec | None = None
    copy_: CopySpec | None = Field(None, alias="copy")
    remove_private: Literal[True] | None = None
    remove_groups: list[Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{4}$")]] | None = None

    @model_validator(mode="after")
    def _exactly_one_action(self) -> MorphRule:
        given = [a for a in _ACTIONS if getattr(self, _field_name(a)) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "rule_action", "a morphing rule needs exactly one action of {actions}; found {n}",
                {"actions": ", ".join(_ACTIONS), "n": ", ".join(given) or "none"})
        return self

    @property
    def action(self) -> str:
        """The name of this rule's action."""
        return next(a for a in _ACTIONS if getattr(self, _field_name(a)) is not None)


def _field_name(action: str) -> str:
    return {"set": "set_", "copy": "copy_"}.get(action, action)


class MorphOptions(_Model):
    """How the rules treat identities and character sets (see runner.morph)."""

    allow_uid_changes: bool = Field(
        False, description="let rules change Study/Series/SOP Instance UIDs; the ledger then "
                           "maps each source UID to its destination UID for verification")
    charset_fallback: Literal["keep", "latin1", "utf8"] = Field(
        "keep", description="instances with a missing or wrong character set: keep the bytes "
                            "(default), or read them as Latin-1 / UTF-8")


# --- the rest ---------------------------------------------------------------------------


class Reports(_Model):
    """Where the ledger and reports are written."""

    dir: ProfilePath
    mask_identifiers: bool = True


class DicomOptions(_Model):
    """Timeouts and PDU size for every association the runner makes or accepts."""

    acse_timeout: float = Field(30, gt=0, le=3600)
    dimse_timeout: float = Field(120, gt=0, le=86400)
    network_timeout: float = Field(120, gt=0, le=86400)
    connection_timeout: float = Field(10, gt=0, le=600)
    max_pdu: int = Field(262144, ge=4096, le=16 * 1024 * 1024)


class Retries(_Model):
    """How often each step is tried again before the study is given up, and how long to wait."""

    retrieve_attempts: int = Field(3, ge=1, le=100, description="C-MOVEs of one study")
    store_attempts: int = Field(5, ge=1, le=100, description="C-STOREs of one instance")
    verify_attempts: int = Field(3, ge=1, le=100, description="checks of one study")
    backoff_seconds: float = Field(5, ge=0, le=3600, description="first wait; doubles each time")
    backoff_max_seconds: float = Field(300, ge=0, le=86400)


class SiteProfile(_Model):
    """One hospital's migration, as the consultant describes it."""

    def rules(self) -> RuleSet:
        """The morphing rules compiled with the profile's options (MorphConfigError if bad)."""
        from runner.morph import compile_rules

        options = self.morphing_options
        return compile_rules(self.morphing, allow_uid_changes=options.allow_uid_changes,
                             charset_fallback=options.charset_fallback)

    version: Literal[1]
    site: Site
    listener: Listener
    source: Source
    destination: Destination
    throttles: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")], Throttle] = Field(
        min_length=1)
    schedule: list[ScheduleEntry] = Field(
        default_factory=list,
        description="first matching entry wins; empty: the first throttle at all times")
    tiering: Tiering = Field(default_factory=Tiering)
    redate: Redate = Field(default_factory=Redate)
    morphing: list[MorphRule] = Field(default_factory=list)
    morphing_options: MorphOptions = Field(default_factory=MorphOptions)
    reports: Reports
    dicom: DicomOptions = Field(default_factory=DicomOptions)
    retries: Retries = Field(default_factory=Retries)
    alert: Alert = Field(default_factory=Alert)

    @model_validator(mode="after")
    def _cross_checks(self) -> SiteProfile:
        problems = cross_field_problems(self.model_dump(by_alias=True, mode="python"))
        if problems:
            loc, message = problems[0]
            raise PydanticCustomError("cross_field", "{message}",
                                      {"message": message, "loc": loc})
        return self
