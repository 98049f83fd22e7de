"""The inventory's value types: one study as the source describes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from runner.profile.tiers import Location

# DICOM InstanceAvailability (0008,0056) values, mapped to storage tiers.
AVAILABILITY_TO_LOCATION: dict[str, Location] = {
    "ONLINE": Location.LOCAL,
    "NEARLINE": Location.NEARLINE,
    "OFFLINE": Location.OFFLINE,
    "UNAVAILABLE": Location.OFFLINE,
}

# How the inventory's note on unanswered tiers begins (dropped when a table gives the tiers).
AVAILABILITY_NOTE = "InstanceAvailability not answered"

# Used when the source says nothing about size: a typical mixed-modality instance.
DEFAULT_MB_PER_INSTANCE = 0.5


@dataclass(frozen=True, slots=True)
class Study:
    """One study of the source, as the inventory knows it.

    `instances` and `size_mb` may be unknown (None) when the source did not answer them.
    `study_date` is None for a study the source holds without a usable Study Date (none,
    empty, or malformed: then `raw_date` keeps what the source answered).
    """

    study_uid: str
    study_date: date | None
    modality: str
    instances: int | None
    size_mb: float | None
    location: Location
    device: str | None = None
    patient_id: str = ""
    raw_date: str = ""
    sop_classes: tuple[str, ...] = ()  # SOP Classes in Study, when the source answers it
    accession: str = ""  # Accession Number as the source answered it (never written out)

    @property
    def sort_date(self) -> date:
        """The date to order by: an undated study counts as the oldest of all."""
        return self.study_date or date.min

    @property
    def estimated_mb(self) -> float:
        """The size to plan with: the known size, else an estimate from the instance count."""
        if self.size_mb is not None:
            return self.size_mb
        return (self.instances or 1) * DEFAULT_MB_PER_INSTANCE


def planned_mb(study: Study) -> float:
    """The study's size as planned (`Study.estimated_mb`): the default wherever a pilot's
    measured sizes may stand in (runner.tiering.calibrate.StudySizes)."""
    return study.estimated_mb


@dataclass(frozen=True, slots=True)
class Census:
    """How an inventory was taken, and whether it can stand for everything the source holds.

    `complete` is False when a query could not be answered fully (a gap is named in `gaps`);
    `since` is set for a partial census (studies dated from then on); `cap` is the answer
    limit the source was found to apply without saying so, if any.
    """

    method: str
    queries: int = 0
    complete: bool = True
    gaps: tuple[str, ...] = ()
    since: date | None = None
    cap: int | None = None

    @property
    def of_source(self) -> bool:
        """Whether the source itself was asked (not a CSV prepared by someone)."""
        return not self.method.startswith("csv")


# The census of an inventory read from a CSV file: prepared by someone, not the source's.
CSV_CENSUS = Census("inventory CSV")


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every study found on the source, with a note of how they were found.

    The inventory is the census: it holds every study the source answered, in the profile's
    window or not; the plan decides which are planned and which excluded, with a reason.
    """

    studies: tuple[Study, ...]
    origin: str
    notes: tuple[str, ...] = ()
    census: Census = CSV_CENSUS
