"""The runner's error hierarchy; the CLI turns these into messages and exit codes.

    PacsmigError                  root: everything the runner raises on purpose
    ├── InputError                bad input from a user: exit code 2
    │   ├── ProfileError          a site profile (carries problems with path, line, column)
    │   └── InventoryError        an inventory CSV or C-FIND answer that cannot be used
    ├── DicomError                broken DICOM infrastructure (peer down, association refused)
    └── LedgerError               the DuckDB ledger cannot be opened or written

DICOM *outcomes* (statuses, failed UIDs) are data, not exceptions; see runner/dicom.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in an input file, located at a line and column (both 1-based)."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class PacsmigError(Exception):
    """Root of every error the runner raises on purpose."""


class InputError(PacsmigError):
    """Bad input from the user (profile, inventory, arguments): exit code 2."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class ProfileError(InputError):
    """A site profile that cannot be used; every problem found is listed."""


class InventoryError(InputError):
    """An inventory (CSV or C-FIND answer) that cannot be used."""


class DicomError(PacsmigError):
    """DICOM infrastructure is broken: a peer is down or refuses the association."""


class LedgerError(PacsmigError):
    """The ledger cannot be opened or written."""


def problem_at(path: Path | str, message: str, line: int = 1, column: int = 1) -> Problem:
    """A problem for a file as a whole, or at a known position."""
    return Problem(str(path), line, column, message)
