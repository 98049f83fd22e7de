"""The site profile as typed, frozen pydantic models: every key, its meaning and its limits.

The small validated types are in runner.profile.fields, the `morphing` section in
runner.profile.morphing; every default shared with the DICOM layer in runner.profile.defaults.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from runner.profile import defaults
from runner.profile.checks import concurrency_order, cross_field_problems, date_order
from runner.profile.fields import (
    AETitle,
    Day,
    ExistingFile,
    FormulaText,
    Host,
    Port,
    ProfilePath,
    Section,
    Slug,
    known_timezone,
)
from runner.profile.morphing import MorphOptions, MorphRule
from runner.profile.tiering import DeviceLimits, Redate, Tiering

# --- sections ---------------------------------------------------------------------------


class Site(Section):
    """Who the migration is for; `id` names the reports folder and the ledger."""

    id: Slug = Field(description="slug [a-z0-9-]; names reports/<id>/ and the ledger")
    name: str = Field(min_length=1)
    timezone: Annotated[str, AfterValidator(known_timezone)] = Field(
        "UTC", description="IANA time zone the schedule is read in")


class Tls(Section):
    """DICOM TLS for one side of a connection (PEM files)."""

    certificate: ExistingFile
    key: ExistingFile
    ca: ExistingFile | None = Field(None, description="CA bundle to verify the peer")
    require_client_certificate: bool = Field(False, description="mutual TLS (listener only)")


class Listener(Section):
    """The runner's own C-STORE SCP that source devices C-MOVE into."""

    ae_title: AETitle
    host: Host = "0.0.0.0"
    port: Port
    spool_dir: ProfilePath
    max_spool_gb: float = Field(20.0, gt=0, description="back-pressure threshold")
    max_memory_mb: int = Field(
        defaults.LISTENER_MAX_MEMORY_MB, ge=0, le=1024 * 1024,
        description="memory for instances on their way through (cut-through); beyond it "
                    "they go to the spool; 0: always through the spool")
    memory_wait_seconds: float = Field(
        defaults.LISTENER_MEMORY_WAIT_SECONDS, ge=0, le=defaults.MEMORY_WAIT_LIMIT_SECONDS,
        description="with that memory full, how long a received instance waits for the "
                    "destination to give space back before it goes to the spool: while "
                    "space keeps coming back it waits on (at most "
                    f"{defaults.MEMORY_WAIT_LIMIT_SECONDS:g} s), so a source faster "
                    "than the destination is slowed to its pace; 0: to the spool at once")
    max_associations: int = Field(defaults.LISTENER_MAX_ASSOCIATIONS, ge=1, le=256)
    tls: Tls | None = None


class Device(Section):
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


class InventoryQuery(Section):
    """How the live inventory is taken by C-FIND."""

    from_: date = Field(alias="from")
    to: date | Literal["today"] = "today"
    window_days: int = Field(30, ge=1, le=3660)
    modalities: list[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}$")]] = []  # noqa: RUF012
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


class Health(Section):
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


class Source(Section):
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


class Alert(Section):
    """Who is told at once when a device goes down or comes back (no patient data is sent)."""

    command: list[str] | None = Field(
        None, min_length=1, description="program and arguments; the event is in the "
                                        "environment: PACSMIG_EVENT, PACSMIG_DEVICE, ...")
    webhook: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = Field(
        None, description="URL that receives a JSON POST")


VerifyMethod = Literal["instances", "counts", "commitment"]
ConflictPolicy = Literal["quarantine", "skip", "overwrite"]


class WebAuth(Section):
    """Credentials for a DICOMweb service, read at start from a file or an environment
    variable (never written in the profile, never logged)."""

    type: Literal["bearer", "basic"] = Field(
        description="bearer: the secret is a token; basic: the secret is user:password")
    file: ExistingFile | None = Field(None, description="a file holding the secret")
    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = Field(
        None, description="an environment variable holding the secret")

    @model_validator(mode="after")
    def _one_source(self) -> WebAuth:
        if (self.file is None) == (self.env is None):
            raise PydanticCustomError("auth_source", "give the secret's `file` or its `env`, "
                                      "one of the two", {})
        return self


class DicomWeb(Section):
    """A DICOMweb destination: STOW-RS to send, QIDO-RS to verify."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s/@]+(/\S*)?$")] = Field(
        description="the service root, e.g. http://vna:8042/dicom-web")
    auth: WebAuth | None = None
    certificate: ExistingFile | None = Field(None, description="client certificate (PEM)")
    key: ExistingFile | None = Field(None, description="the client certificate's key (PEM)")
    ca: ExistingFile | None = Field(None, description="CA bundle to verify the service")
    timeout: float = Field(120.0, gt=0, description="seconds for one HTTP request")
    max_request_mb: float = Field(100.0, gt=0, description="largest STOW-RS request body")
    max_instances_per_request: int = Field(
        50, ge=1, le=10000, description="instances of one study per STOW-RS request")


class Destination(Section):
    """The new archive (VNA or PACS) that receives the migrated instances: a DICOM peer
    (`ae_title`, `host`, `port`) or a DICOMweb service (`dicomweb`)."""

    name: str = Field(min_length=1)
    ae_title: AETitle | None = None
    host: Host | None = None
    port: Port | None = None
    dicomweb: DicomWeb | None = None
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

    @property
    def in_reports(self) -> str:
        """The destination as reports name it: its name, with a DICOMweb one's URL (which
        holds no credentials: the URL refuses user:password)."""
        return f"{self.name} ({self.dicomweb.url})" if self.dicomweb else self.name

    @model_validator(mode="after")
    def _dimse_or_dicomweb(self) -> Destination:
        problem = self._kind_problem()
        if problem is not None:
            message, field = problem
            raise PydanticCustomError("destination_kind", "{message}",
                                      {"message": message, "field": field} if field
                                      else {"message": message})
        return self

    def _kind_problem(self) -> tuple[str, str] | None:
        """What makes this destination neither DIMSE nor DICOMweb (message, key)."""
        dimse = [self.ae_title, self.host, self.port]
        if self.dicomweb is None:
            return ("give the destination's ae_title, host and port (DIMSE), or its dicomweb "
                    "url", "") if None in dimse else None
        if any(value is not None for value in dimse):
            return ("a destination is either DIMSE (ae_title, host, port) or DICOMweb "
                    "(dicomweb), not both", "dicomweb")
        if self.tls is not None:
            return ("a DICOMweb destination's TLS files are dicomweb.ca, dicomweb.certificate "
                    "and dicomweb.key, not tls", "tls")
        if self.verify == "commitment":
            return ("a DICOMweb destination verifies by QIDO-RS: verify instances or counts, "
                    "not commitment", "verify")
        if self.verify_sample is not None:
            return ("verify_sample reads instances back by C-MOVE: not for a DICOMweb "
                    "destination", "verify_sample")
        return None


class Throttle(Section):
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


class ScheduleEntry(Section):
    """One slot of the weekly schedule; an entry without days/hours matches any time."""

    days: list[Day] | None = None
    hours: Annotated[str, AfterValidator(_hours)] | None = None
    throttle: str

    @property
    def minutes(self) -> tuple[int, int] | None:
        """The hours as minutes since midnight, or None for all day."""
        return parse_hours(self.hours) if self.hours else None


class Reports(Section):
    """Where the ledger and reports are written."""

    dir: ProfilePath
    mask_identifiers: bool = True


class DicomOptions(Section):
    """Timeouts and PDU size for every association the runner makes or accepts."""

    acse_timeout: float = Field(defaults.ACSE_TIMEOUT, gt=0, le=3600)
    dimse_timeout: float = Field(defaults.DIMSE_TIMEOUT, gt=0, le=86400)
    network_timeout: float = Field(defaults.NETWORK_TIMEOUT, gt=0, le=86400)
    connection_timeout: float = Field(defaults.CONNECTION_TIMEOUT, gt=0, le=600)
    max_pdu: int = Field(defaults.MAX_PDU, ge=4096, le=16 * 1024 * 1024)


class Retries(Section):
    """How often each step is tried again before the study is given up, and how long to wait."""

    retrieve_attempts: int = Field(3, ge=1, le=100, description="C-MOVEs of one study")
    store_attempts: int = Field(5, ge=1, le=100, description="C-STOREs of one instance")
    verify_attempts: int = Field(3, ge=1, le=100, description="checks of one study")
    backoff_seconds: float = Field(5, ge=0, le=3600, description="first wait; doubles each time")
    backoff_max_seconds: float = Field(300, ge=0, le=86400)


class PriorityHl7(Section):
    """An HL7 v2 listener (MLLP) for orders, appointments and admissions."""

    host: Host = "0.0.0.0"
    port: Port
    tls: Tls | None = Field(None, description="MLLP over TLS (require_client_certificate "
                            "for mutual TLS)")


class PriorityWorklist(Section):
    """A Modality Worklist (C-FIND) polled for procedures scheduled soon."""

    ae_title: AETitle
    host: Host
    port: Port
    every_minutes: float = Field(15, gt=0, le=1440, description="minutes between polls")
    days_ahead: int = Field(1, ge=0, le=60,
                            description="procedures scheduled from today to this many days on")
    station_ae_title: AETitle | None = Field(
        None, description="ask only for this Scheduled Station AE Title (all when unset)")
    modalities: list[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}$")]] = Field(
        default_factory=list, description="ask only for these modalities (all when empty)")
    tls: Tls | None = None


class PriorityRules(Section):
    """Which of a patient's studies a priority request moves."""

    max_studies: int | None = Field(None, ge=1, le=10000,
                                    description="the most recent N studies (all when unset)")
    max_age_years: float | None = Field(
        None, gt=0, le=200, description="none older than this before the request's date")
    same_modality: bool = Field(False, description="only studies of the order's modality")
    same_body_part: bool = Field(False, description="only studies of the order's body part "
                                 "(asked of the source per series)")


class Priority(Section):
    """The priority lane: triggers that move a patient's priors to the head of the queue."""

    hl7: PriorityHl7 | None = None
    worklist: PriorityWorklist | None = None
    csv: ProfilePath | None = Field(
        None, description="a CSV of patient_id,date[,modality][,issuer] (tomorrow's clinic "
                          "list), read again when it changes")
    rules: PriorityRules = Field(default_factory=PriorityRules)


class SiteProfile(Section):
    """One hospital's migration, as the consultant describes it."""

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
    priority: Priority = Field(default_factory=Priority)

    @model_validator(mode="after")
    def _cross_checks(self) -> SiteProfile:
        problems = cross_field_problems(self.model_dump(by_alias=True, mode="python"))
        if problems:
            loc, message = problems[0]
            raise PydanticCustomError("cross_field", "{message}",
                                      {"message": message, "loc": loc})
        return self
