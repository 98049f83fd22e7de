"""Rebuilding a lost ledger from the destination (`pacsmig verify --rebuild`).

When the ledger cannot be opened (a damaged disk; DuckDB replays its own WAL after a crash,
so a killed run never needs this), move it aside and rebuild: every planned study is looked
up at the destination (image-level C-FIND, or QIDO-RS for a DICOMweb one); what it holds
is recorded as sent, and a study it holds completely (at least the inventory's instance
count) as verified. The next `pacsmig run` then sends only what is missing. Spooled files
the new ledger does not know are removed by that run (they are retrieved again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runner.destinations.holdings import Holdings
from runner.execute.destination import holdings, named
from runner.execute.resume import planned_facts
from runner.execute.run import open_ledger
from runner.inventory.model import Study
from runner.ledger import Ledger, StudyStatus, VerificationMethod
from runner.morph.loaded import LoadedProfile
from runner.plan.model import Plan

_SERIES, _SOP_CLASS = 0x0020000E, 0x00080016
_FOUND = "found at the destination when the ledger was rebuilt"
_KNOWN = "SELECT study_uid FROM reconciliation WHERE received_instances > 0"


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """How many studies the destination holds completely, partly, or not at all."""

    complete: int
    partial: int
    absent: int
    unanswered: int

    def lines(self) -> list[str]:
        """For a person."""
        return [f"Rebuilt from the destination: {self.complete:,} studies complete (verified), "
                f"{self.partial:,} partly there, {self.absent:,} absent, "
                f"{self.unanswered:,} not answered; run `pacsmig run` to send the rest"]


def rebuild_from_destination(loaded: LoadedProfile, plan: Plan,
                             write: Callable[[str], None]) -> Rebuilt:
    """Record in the ledger what the destination already holds of the plan's studies."""
    profile = loaded.profile
    held = holdings(profile)
    ledger = open_ledger(loaded)
    counts = [0, 0, 0, 0]
    try:
        ledger.upsert_studies(planned_facts(plan))
        known = {row[0] for row in ledger.query(_KNOWN)}
        for phase in plan.phases:
            for study in phase.studies:
                if study.study_uid not in known:
                    counts[_adopt(ledger, held, study)] += 1
        write(f"Looked up {sum(counts):,} studies at {named(profile)}")
    finally:
        ledger.close()
    return Rebuilt(*counts)


def _adopt(ledger: Ledger, held: Holdings, study: Study) -> int:
    """Record one study's instances found at the destination: 0 complete, 1 partial,
    2 absent, 3 not answered."""
    found = held.present(study.study_uid, (_SERIES, _SOP_CLASS))
    if not found.ok:
        return 3
    if not found.sop_uids:
        return 2
    for sop, values in found.values.items():
        ledger.record_received(sop_instance_uid=sop, study_uid=study.study_uid,
                               series_uid=values.get(_SERIES, ""),
                               sop_class_uid=values.get(_SOP_CLASS, ""), transfer_syntax="",
                               nbytes=0, spool_name="at-destination")
        ledger.record_forwarded(sop_instance_uid=sop, study_uid=study.study_uid, ok=True,
                                status=0x0000, reason=_FOUND)
    complete = study.instances is not None and len(found.sop_uids) >= study.instances
    if complete:
        ledger.record_verification(study_uid=study.study_uid,
                                   method=VerificationMethod.IMAGE_FIND,
                                   expected=study.instances, found=len(found.sop_uids), ok=True,
                                   confirmed_uids=sorted(found.sop_uids), detail=_FOUND)
        ledger.record_study_status(study.study_uid, StudyStatus.DONE)
    return 0 if complete else 1
