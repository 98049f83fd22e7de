"""The capability matrix of `plan` (pure): the SOP classes the inventory found, against the
transfer syntaxes the destination accepts for each (from a negotiation probe).

A class the destination accepts in every syntax probed goes as is; one it accepts only in
some goes as is when held in those, and otherwise is transcoded if the instance is encoded
losslessly and the destination accepts a syntax the runner can write (decoded, sent
uncompressed or compressed losslessly), or becomes an exception; one it accepts
in none is refused: each of its instances will be an exception. The source's C-FIND says
nothing of the syntaxes instances are held in, so the matrix names what will happen to each
syntax, not how many instances are in each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID

UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99",
                "1.2.840.10008.1.2.2")


@dataclass(frozen=True, slots=True)
class ClassCapability:
    """One SOP class: how many studies hold it, and what the destination accepts of it."""

    sop_class: str
    studies: int
    accepted: tuple[str, ...]
    refused: tuple[str, ...]

    @property
    def verdict(self) -> str:
        """as is, partly (some syntaxes transcoded or exceptions), or refused."""
        if not self.accepted:
            return "refused"
        if not self.refused:
            return "as is"
        if not any(s in self.accepted for s in UNCOMPRESSED):
            return "partly, no uncompressed syntax accepted"
        return "partly"

    def describe(self, lossless: frozenset[str], writable: frozenset[str]) -> str:
        """One line for a person: `lossless` are the syntaxes that can be decoded without
        loss, `writable` those the runner can write (uncompressed, lossless encodings)."""
        name = _name(self.sop_class)
        head = f"{name}: {self.studies:,} stud{'y' if self.studies == 1 else 'ies'}"
        if self.verdict == "refused":
            return f"{head}; REFUSED by the destination: each instance will be an exception"
        if self.verdict == "as is":
            return f"{head}; accepted in every transfer syntax probed: goes as is"
        target = any(s in writable for s in self.accepted)
        transcoded = [s for s in self.refused if s in lossless and target]
        lost = [s for s in self.refused if s not in transcoded]
        parts = [f"{head}; accepted in {len(self.accepted)} of "
                 f"{len(self.accepted) + len(self.refused)} syntaxes"]
        if transcoded:
            parts.append(f"held in {_names(transcoded)}: transcoded losslessly")
        if lost:
            parts.append(f"held in {_names(lost)}: exceptions (cannot be sent losslessly)")
        return "; ".join(parts)


def capability_matrix(studies_by_class: Mapping[str, int],
                      accepted: Mapping[str, Sequence[str]],
                      probed: Sequence[str]) -> list[ClassCapability]:
    """One row per SOP class, most studies first."""
    rows = [ClassCapability(c, n, tuple(s for s in probed if s in accepted.get(c, ())),
                            tuple(s for s in probed if s not in accepted.get(c, ())))
            for c, n in studies_by_class.items()]
    return sorted(rows, key=lambda r: (-r.studies, r.sop_class))


def matrix_json(rows: Sequence[ClassCapability]) -> list[dict[str, Any]]:
    """The matrix for `plan --json`."""
    return [{"sop_class": r.sop_class, "name": _name(r.sop_class),
             "private": bool(UID(r.sop_class).is_private), "studies": r.studies,
             "verdict": r.verdict, "accepted_syntaxes": list(r.accepted),
             "refused_syntaxes": list(r.refused)} for r in rows]


def _name(uid: str) -> str:
    name = str(UID(uid).name)
    if name == uid and UID(uid).is_private:
        return f"{uid} (private)"
    return name


def _names(syntaxes: Sequence[str]) -> str:
    shown = [_name(s) for s in syntaxes[:10]]
    more = len(syntaxes) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
