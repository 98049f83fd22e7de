"""The tier model's parameters: every default of the forecast, documented in one place."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from runner.profile.models import SiteProfile


@dataclass(frozen=True, slots=True)
class TierParameters:
    """What the forecast assumes about the source PACS and the hospital around it.

    Optional profile keys of the same names under `tiering:` override these defaults
    (`from_profile`); `recent_days` and `redate_every_hours` come from `redate:`.
    """

    local_store_gb: float = 0.0
    """Capacity of the local store; 0 (or less than the local studies' total) means the
    store is exactly full of the inventory's local studies at the start."""
    low_water_fraction: float = 0.9
    """A recall that fills the store pushes studies off down to this fraction of it."""
    nearline_mb_per_s: float = 10.0
    """Recall speed from nearline (and offline) storage, per study."""
    device_mb_per_s: float = 20.0
    """Transfer speed of one retrieve from a source device to the listener."""
    retrieve_latency_seconds: float = 0.0
    """From a C-MOVE to its first instance for a local study (association, the source's
    look-up): the device holds the retrieve that long before its data flows."""
    redate_latency_seconds: float | None = None
    """The same for a re-date (which the runner sends without the migrate retrieve's
    checks at the destination); None: `retrieve_latency_seconds`."""
    device_total_mb_per_s: float = 40.0
    """What one device delivers across all its retrieves at once: they share it (a PACS
    server's disks and network, not one association, are the limit)."""
    lockup_backlog_mb: float = 2000.0
    """A device is overloaded when the MB it has been asked for and not yet delivered
    (recalls included) pass this: a burst of large retrieves, which the delay formula spaces
    out and an hourly break does not. A retrieve asked of an overloaded device locks it up
    with the overload's share as probability (10 % over: one in ten; twice: certainly);
    its retrieves in flight are lost and asked again when it is back."""
    lockup_minutes: float = 60.0
    """How long a lock-up stops the device: until it is restarted and retrieves flow again
    (the runner notices within stall_timeout; at night a restart may wait for someone)."""
    new_studies_per_day: float | None = None
    """New clinical studies stored local each day; None: the inventory's rate over the
    last `history_days`."""
    new_mb_per_day: float | None = None
    """Their megabytes per day; None: from the same history."""
    new_study_mb: float = 50.0
    """The size of a new study when there is no recent history to learn it from."""
    clinical_reads_per_day: float | None = None
    """Reads of recent studies by clinicians each day; None: as many as new studies."""
    prior_read_share: float = 0.1
    """The share of clinical reads that open an older prior (a study older than
    `recent_days`, recalled from nearline when it is not local) rather than a recent one."""
    recent_days: int = 14
    """A study acquired within this many days of the simulated day is clinically recent."""
    redate_every_hours: float = 6.0
    """Re-dating refreshes the recent local studies this often (strategies with re-dating)."""
    redate_headroom_fraction: float = 0.5
    """A re-date round also starts as soon as the MB that entered the local store since the
    last round (recalls, new studies) reach this fraction of its headroom: the store's
    low-water mark less the recent studies' MB, the data that may pass before the recent
    studies reach the end of its push-off order. 0 turns it off (every_hours alone)."""
    history_days: int = 90
    """The window of the inventory's recent history that gives the default arrival rates."""
    break_minute: int = 50
    """The hourly-break strategies start no retrieve from this minute to the end of the hour."""
    horizon_days: float = 3650.0
    """A forecast still running after this many simulated days stops as unfinished."""
    seed: int = 0
    """Seeds the choice of studies read by clinicians: same inputs, same forecast."""

    @classmethod
    def from_profile(cls, profile: SiteProfile) -> TierParameters:
        """The defaults, overridden by the profile's keys (known now or added later)."""
        defaults = cls()
        tiering = profile.tiering
        values = {f.name: _key(tiering, f.name, getattr(defaults, f.name)) for f in fields(cls)}
        values["recent_days"] = profile.redate.recent_days or defaults.recent_days
        values["redate_every_hours"] = profile.redate.every_hours
        values["redate_headroom_fraction"] = profile.redate.headroom_fraction
        return cls(**values)

    def __post_init__(self) -> None:
        problems = [name for name, ok in (
            ("local_store_gb >= 0", self.local_store_gb >= 0),
            ("0 < low_water_fraction <= 1", 0 < self.low_water_fraction <= 1),
            ("nearline_mb_per_s > 0", self.nearline_mb_per_s > 0),
            ("device_mb_per_s > 0", self.device_mb_per_s > 0),
            ("device_total_mb_per_s > 0", self.device_total_mb_per_s > 0),
            ("retrieve_latency_seconds >= 0", self.retrieve_latency_seconds >= 0),
            ("lockup_backlog_mb > 0", self.lockup_backlog_mb > 0),
            ("lockup_minutes >= 0", self.lockup_minutes >= 0),
            ("new_study_mb > 0", self.new_study_mb > 0),
            ("rates per day >= 0", all(r is None or r >= 0 for r in (
                self.new_studies_per_day, self.new_mb_per_day, self.clinical_reads_per_day))),
            ("0 <= prior_read_share <= 1", 0 <= self.prior_read_share <= 1),
            ("recent_days >= 0", self.recent_days >= 0),
            ("redate_every_hours > 0", self.redate_every_hours > 0),
            ("0 <= redate_headroom_fraction <= 1", 0 <= self.redate_headroom_fraction <= 1),
            ("history_days >= 1", self.history_days >= 1),
            ("0 < break_minute < 60", 0 < self.break_minute < 60),
            ("horizon_days > 0", self.horizon_days > 0)) if not ok]
        if problems:
            raise ValueError(f"tier parameters out of range: {', '.join(problems)}")


def _key(section: object, name: str, default: Any) -> Any:
    value = getattr(section, name, None)
    return default if value is None else value
