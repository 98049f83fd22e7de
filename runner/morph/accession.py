"""The Accession Number of a study before and after the rules, for the reconciliation.

A trust reconciles the migration against its RIS by accession number, so the reconciliation
names each study's number as the source answered it (C-FIND) and as the rules make it. The
rules are applied to the study's C-FIND header (Study Instance UID, Patient ID, Study Date,
Modality, Accession Number): a rule whose condition reads an attribute the header lacks is
judged as on an instance without it. Both are masked unless the profile says otherwise:
all but the last four characters become `*`, so a prefix the rules add shows as length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydicom import Dataset

from runner.morph.ruleset import RuleSet

ACCESSION_NUMBER = 0x00080050
SHOWN = 4  # characters left in clear at the end of a masked accession number


def masked(value: str) -> str:
    """`value` with all but its last SHOWN characters replaced by `*`."""
    hidden = len(value) - SHOWN if len(value) > SHOWN else len(value)
    return "*" * hidden + value[hidden:]


@dataclass(frozen=True, slots=True)
class Accessions:
    """How accession numbers are written for the ledger: through the rules, masked or not."""

    rules: RuleSet
    mask: bool = True

    def before_after(self, study_uid: str, accession: str, patient_id: str,
                     study_date: date | None, modality: str) -> tuple[str, str | None]:
        """The accession number as the source holds it ("" when it answered none) and as
        the rules make it (None when the rules fail on the header: not judged here)."""
        after: str | None = accession
        if ACCESSION_NUMBER in self.rules.touched_tags:
            after = self._morphed(study_uid, accession, patient_id, study_date, modality)
        return self._shown(accession), None if after is None else self._shown(after)

    def _morphed(self, study_uid: str, accession: str, patient_id: str,
                 study_date: date | None, modality: str) -> str | None:
        header = Dataset()
        header.StudyInstanceUID = study_uid
        header.PatientID = patient_id
        header.AccessionNumber = accession
        header.Modality = modality
        if study_date is not None:
            header.StudyDate = study_date.strftime("%Y%m%d")
        if not self.rules.apply(header).ok:
            return None
        return str(header.get("AccessionNumber", "") or "")

    def _shown(self, value: str) -> str:
        return masked(value) if self.mask and value else value
