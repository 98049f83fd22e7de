"""The inventory's value types: one study as the source describes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Location(StrEnum):
    """Where a study lives on the source PACS (from InstanceAvailability or a CSV)."""

    LOCAL = "local"
    NEARLINE = "nearline"
    OFFLINE = "offline"


# DICOM InstanceAvailability (0008,0056) values, mapped to storage tiers.
AVAILABILITY_TO_LOCATION: dict[str, Location] = {
    "ONLINE": Location.LOCAL,
    "NEARLINE": Location.NEARLINE,
    "OFFLINE": Location.OFFLINE,
    "UNAVAILABLE": Location.OFFLINE,
}

# Used when the source says nothing about size: a typical mixed-modality instance.
DEFAULT_MB_PER_INSTANCE = 0.5


@dataclass(frozen=True, slots=True)
class Study:
    """One study of the source, as the inventory knows it.

    `instances` and `size_mb` may be unknown (None) when the source did not answer them;
    `size_known` says whether `size_mb` came from the source or was estimated.
    """

    study_uid: str
    study_date: date
    modality: str
    instances: int | None
    size_mb: float | None
    location: Location
    device: str | None = None
    patient_id: str = ""
    sop_classes: tuple[str, ...] = ()  # SOP Classes in Study, when the source answers it

    @property
    def estimated_mb(self) -> float:
        """The size to plan with: the known size, else an estimate from the instance count."""
        if self.size_mb is not None:
            return self.size_mb
        return (self.instances or 1) * DEFAULT_MB_PER_INSTANCE


@dataclass(frozen=True, slots=True)
class Inventory:
    """All studies found on the source, with a note of how they were found."""

    studies: tuple[Study, ...]
    origin: str
    notes: tuple[str, ...] = ()
