"""Which studies a report covers: all of them, or one wave by study date and phase."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class ReportScope:
    """A wave: study dates from `date_from` to `date_to` (inclusive), `phase` (1-based).

    A wave is planned by study date, so the dates filter on the study date (not on when the
    instances arrived); a study without a date falls outside every dated wave.
    """

    date_from: date | None = None
    date_to: date | None = None
    phase: int | None = None

    @property
    def is_everything(self) -> bool:
        """No filter: the whole ledger."""
        return self.date_from is None and self.date_to is None and self.phase is None

    def problem(self) -> str | None:
        """Why this scope cannot be used, or None."""
        if self.phase is not None and self.phase < 1:
            return f"--phase must be 1 or more (phases are numbered from 1), got {self.phase}"
        if self.date_from and self.date_to and self.date_from > self.date_to:
            return f"--from {self.date_from} is after --to {self.date_to}"
        return None

    def describe(self) -> str:
        """The scope in words, as the report states it."""
        if self.is_everything:
            return "every study the source holds (its census), planned or excluded"
        parts = []
        if self.phase is not None:
            parts.append(f"phase {self.phase}")
        if self.date_from and self.date_to:
            parts.append(f"studies dated {self.date_from} to {self.date_to}")
        elif self.date_from:
            parts.append(f"studies dated {self.date_from} or later")
        elif self.date_to:
            parts.append(f"studies dated up to {self.date_to}")
        return "interim report: " + ", ".join(parts) + " (by study date)"

    def file_suffix(self) -> str:
        """'' for the whole migration, else e.g. '-phase2-from2019-01-01-to2019-12-31'."""
        parts = [f"phase{self.phase}" if self.phase is not None else "",
                 f"from{self.date_from}" if self.date_from else "",
                 f"to{self.date_to}" if self.date_to else ""]
        return "".join(f"-{part}" for part in parts if part)

    def sql_params(self, salt: str) -> dict[str, object]:
        """The parameters of sql/scope.sql (phases are 0-based in the ledger)."""
        return {"salt": salt, "date_from": self.date_from, "date_to": self.date_to,
                "phase_index": None if self.phase is None else self.phase - 1}
