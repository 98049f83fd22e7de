"""`pacsmig verify`: ask the destination again about every study sent, record what is missing.

A study found short is recorded as such (a failed check with the missing SOP Instance UIDs);
the next `pacsmig run` then retrieves and sends what is missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.execute.destination import holdings
from runner.execute.peers import destination_peer, dicom_settings, is_dicomweb
from runner.execute.settlement.sampling import SampleSummary, sample_check
from runner.execute.settlement.verdict import verdict
from runner.execute.settlement.verifier import METHODS, Check, CommitmentWaiter, Verifier
from runner.execute.site import listener_config, open_ledger
from runner.ledger import Ledger, StudyStatus
from runner.morph.loaded import LoadedProfile

_SENT = """
SELECT i.study_uid, i.sop_instance_uid, coalesce(i.dest_sop_instance_uid, i.sop_instance_uid),
       i.sop_class_uid, s.planned_instances
FROM instances i JOIN studies s USING (study_uid)
WHERE i.state IN ('forwarded', 'verified')
ORDER BY s.phase_index, s.order_index, i.study_uid
"""


@dataclass(frozen=True, slots=True)
class VerifySummary:
    """How the re-check went."""

    studies: int
    complete: int
    short: int
    unanswered: int
    sample: SampleSummary = field(default_factory=lambda: SampleSummary(0, 0, 0, 0))

    def lines(self) -> list[str]:
        """For a person."""
        return [f"Checked {self.studies:,} studies at the destination: {self.complete:,} "
                f"complete, {self.short:,} short (queued for the next run), "
                f"{self.unanswered:,} not answered", *self.sample.lines()]


def verify_again(loaded: LoadedProfile, write: Callable[[str], None]) -> VerifySummary:
    """Check every study with instances sent; record each check in the ledger."""
    profile = loaded.profile
    verifier = Verifier(None if is_dicomweb(profile) else destination_peer(profile),
                        profile.source.calling_ae_title, dicom_settings(profile),
                        profile.destination.verify, CommitmentWaiter(),
                        commitment_timeout=30.0, holdings=holdings(profile))
    ledger = open_ledger(loaded)
    try:
        sent, planned = _sent(ledger)
        counts = [0, 0, 0]
        for study_uid, expected in sent.items():
            check = verifier.check(study_uid, expected)
            counts[_record(ledger, profile.destination.verify, study_uid, expected,
                           planned[study_uid], check)] += 1
        write(f"Checked {len(sent):,} studies")
        sample = sample_check(loaded, ledger, listener_config(loaded), write)
    finally:
        ledger.close()
    return VerifySummary(len(sent), counts[0], counts[1], counts[2], sample)


def _sent(ledger: Ledger) -> tuple[dict[str, dict[str, tuple[str, str]]], dict[str, int]]:
    sent: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    planned: dict[str, int] = {}
    for study, sop, dest, sop_class, count in ledger.query(_SENT):
        sent[study][sop] = (dest, sop_class)
        planned[study] = max(int(count or 0), len(sent[study]))
    return sent, planned


def _record(ledger: Ledger, method: str, study_uid: str, expected: dict[str, tuple[str, str]],
            source_count: int, check: Check) -> int:
    """Record one check; 0 complete, 1 short, 2 not answered."""
    if not check.answered:
        return 2
    judged = verdict(method, expected, check.confirmed, check.found, source_count)
    ok = judged.ok
    ledger.record_verification(study_uid=study_uid, method=METHODS[method],
                               expected=source_count, found=check.found, ok=ok,
                               missing_uids=judged.missing, confirmed_uids=sorted(check.confirmed),
                               detail=check.detail)
    if not ok:
        ledger.record_study_status(study_uid, StudyStatus.ACTIVE, "short at the destination")
    return 0 if ok else 1
