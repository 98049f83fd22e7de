"""What a destination holds, asked the same way of either kind: `Holdings` (the seam), and
its DIMSE implementation (image- and study-level C-FIND); DICOMweb's is runner.destinations.qido.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.verify import (
    CountOutcome,
    PresenceOutcome,
    instances_anywhere,
    instances_present,
    study_instance_count,
)


class Holdings(Protocol):
    """A destination asked what it holds."""

    def present(self, study_uid: str, keys: Sequence[int] = ()) -> PresenceOutcome:
        """The instances of `study_uid` it holds, with the values of `keys` for each."""
        ...

    def anywhere(self, sop_uids: Sequence[str], keys: Sequence[int] = ()) -> PresenceOutcome:
        """Which of `sop_uids` it holds in any study, with the values of `keys`."""
        ...

    def count(self, study_uid: str) -> CountOutcome:
        """How many instances of `study_uid` it holds."""
        ...


@dataclass(frozen=True, slots=True)
class DimseHoldings:
    """A DICOM peer's holdings, by C-FIND."""

    peer: Peer
    calling_ae: str
    settings: DicomSettings

    def present(self, study_uid: str, keys: Sequence[int] = ()) -> PresenceOutcome:
        """Image-level C-FIND of the study."""
        return instances_present(self.peer, self.calling_ae, self.settings, study_uid, keys)

    def anywhere(self, sop_uids: Sequence[str], keys: Sequence[int] = ()) -> PresenceOutcome:
        """Image-level C-FIND by SOP Instance UID lists."""
        return instances_anywhere(self.peer, self.calling_ae, self.settings, sop_uids, keys)

    def count(self, study_uid: str) -> CountOutcome:
        """Study-level C-FIND of NumberOfStudyRelatedInstances."""
        return study_instance_count(self.peer, self.calling_ae, self.settings, study_uid)
