"""The verdict on a study from the destination's answer: complete, or which instances are
missing; and what an unanswered check means."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a study is complete at the destination, and which instances are missing."""

    ok: bool
    missing: tuple[str, ...]


def verdict(method: str, sent: Collection[str], confirmed: Collection[str], found: int,
            source_count: int) -> Verdict:
    """Judge an answered check: by count (`counts`), else instance by instance.

    `sent` are the source SOP UIDs the runner sent, `confirmed` those the destination holds
    (with the right values), `source_count` how many the source has.
    """
    if method == "counts":
        return Verdict(found >= source_count, ())
    missing = tuple(sorted(set(sent) - set(confirmed)))
    return Verdict(not missing and len(sent) >= source_count, missing)


def verification_error(detail: str, calling_ae: str) -> str:
    """Why a study is not verified when the destination could not be asked: an error, not 0."""
    return (f"verification error: the destination refused or did not answer the check "
            f"({detail}); what it holds is unknown, not 0: let {calling_ae} query the "
            f"destination (C-FIND), then `pacsmig verify`")
