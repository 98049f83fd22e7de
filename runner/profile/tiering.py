"""The profile's keys for where studies live and what the forecast assumes: `tiering`
(the order of tiers, the local store and the tier model's figures), `redate` (keeping
recent studies local) and each device's `limits` (what it bears before it locks up)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from runner.profile.fields import Section, existing_file, relative_path
from runner.profile.tiers import Location


class DeviceLimits(Section):
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


class Tiering(Section):
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
    recall_timeout: float = Field(
        3600, gt=0, le=7 * 86400,
        description="seconds a retrieve of a study not on the local store may wait before "
                    "any data moves (its recall from nearline) before it counts as stalled; "
                    "stall_timeout holds once data moves (the ledger's longest recall so "
                    "far, doubled, when longer)")
    prior_read_share: float | None = Field(
        None, ge=0, le=1, description="forecast and simulated PACS: the share of clinical "
                                      "reads that open an older prior rather than a recent "
                                      "study (default 0.1)")
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
        path = relative_path(Path(value[4:]), info)
        existing_file(path)
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


class Redate(Section):
    """Keeping clinically recent studies on the local store while the migration runs."""

    recent_days: int = Field(14, ge=0, le=3660, description="0 switches re-dating off")
    every_hours: float = Field(6, gt=0, le=24 * 30)
    headroom_fraction: float = Field(
        0.5, ge=0, le=1,
        description="a round also starts when the MB recalled into the local store since the "
                    "last round reach this fraction of its headroom (the store less the "
                    "recent studies): recent studies are refreshed before recalls push them "
                    "off; 0: every_hours alone")


# --- the rest ---------------------------------------------------------------------------
