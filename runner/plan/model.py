"""The execution plan: a frozen value compiled from a profile and an inventory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from runner.inventory.model import CSV_CENSUS, Census, Location, Study


@dataclass(frozen=True, slots=True)
class Phase:
    """One tier's studies, in the order they will be retrieved (oldest first).

    `tier` is None for the single phase of an oldest-first plan, which mixes tiers.
    """

    tier: Location | None
    studies: tuple[Study, ...]
    devices: tuple[str, ...]  # the planned device of each study, aligned with `studies`
    instances: int  # unknown counts count as 0
    megabytes: float  # estimated where the source gave no size

    @classmethod
    def of(cls, tier: Location | None, studies: tuple[Study, ...],
           devices: tuple[str, ...]) -> Phase:
        """A phase with its totals computed once."""
        return cls(tier, studies, devices, sum(s.instances or 0 for s in studies),
                   sum(s.estimated_mb for s in studies))

    @property
    def name(self) -> str:
        """The tier's name, or "all" for a phase that mixes tiers."""
        return self.tier.value if self.tier is not None else "all"

    @property
    def date_span(self) -> tuple[date, date] | None:
        """The first and last study dates (dated studies come first, sorted by date)."""
        dated = [s.study_date for s in self.studies if s.study_date is not None]
        return (dated[0], dated[-1]) if dated else None

    @property
    def undated(self) -> int:
        """Studies without a usable Study Date (planned after the dated ones)."""
        return sum(1 for s in self.studies if s.study_date is None)


class ExclusionReason(StrEnum):
    """Why a study the source holds is not planned."""

    OUTSIDE_WINDOW = "outside the inventory window"
    MODALITY = "modality not selected"
    UNDATED = "no usable Study Date"
    LISTED = "on the exclusion list"


@dataclass(frozen=True, slots=True)
class Excluded:
    """A study of the census that the plan leaves out, and why (`detail`: in words)."""

    study: Study
    reason: ExclusionReason
    detail: str


@dataclass(frozen=True, slots=True)
class ThrottleSetting:
    """A named throttle with its formula."""

    name: str
    max_concurrent: int
    min_concurrent: int
    delay_seconds: str


@dataclass(frozen=True, slots=True)
class Slot:
    """One schedule entry, resolved: days (None = every day), minutes since midnight."""

    days: tuple[str, ...] | None
    minutes: tuple[int, int] | None
    throttle: str


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One source device: its address, the studies planned on it, and its throttles."""

    id: str
    ae_title: str
    host: str
    port: int
    pinned_throttle: str | None
    studies: int
    megabytes: float
    # what the device bears, for the forecast (None: the tier model's defaults)
    mb_per_s: float | None = None
    lockup_backlog_mb: float | None = None
    lockup_minutes: float | None = None


@dataclass(frozen=True, slots=True)
class RedatePlan:
    """Which studies are kept local by re-dating, and how often."""

    recent_days: int
    every_hours: float
    since: date | None
    study_uids: tuple[str, ...]
    megabytes: float
    # a round also starts once this many MB were recalled into the local store since the
    # last one (redate.headroom_fraction of the store's headroom); None: every_hours alone
    volume_mb: float | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the runner will do, in order; compile it twice and get the same plan."""

    site_id: str
    site_name: str
    today: date
    timezone: str
    phases: tuple[Phase, ...]
    devices: tuple[DevicePlan, ...]
    throttles: tuple[ThrottleSetting, ...]
    schedule: tuple[Slot, ...]
    redate: RedatePlan
    rules: tuple[str, ...]
    destination: str
    verify: str
    inventory_origin: str
    notes: tuple[str, ...]
    census: Census = CSV_CENSUS
    excluded: tuple[Excluded, ...] = ()

    @property
    def source_studies(self) -> int:
        """Studies the census found at the source: planned and excluded."""
        return self.studies + len(self.excluded)

    @property
    def undated(self) -> int:
        """Planned studies without a usable Study Date."""
        return sum(p.undated for p in self.phases)

    @property
    def studies(self) -> int:
        """Studies in the plan."""
        return sum(len(p.studies) for p in self.phases)

    @property
    def megabytes(self) -> float:
        """Planned size in MB."""
        return sum(p.megabytes for p in self.phases)
