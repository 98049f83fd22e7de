"""Picking up where the ledger stands: which studies are left, what each already has."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from runner.dicom.arena import IN_MEMORY
from runner.dicom.spool import Spool, file_checksum
from runner.execute.work import Copy, Stage, StudyWork
from runner.inventory.model import Study
from runner.ledger import EventKind, Ledger, StudyPlanned
from runner.plan.model import Plan

HeldAt = Callable[[str, list[str]], set[str]]  # of a study's instances, those a peer holds

STUDIES_LEFT = """
SELECT study_uid FROM study_status WHERE status <> 'verified'
"""

# The missing instances of each study's latest check, when it found the study short.
_SHORT = """
SELECT study_uid, arg_max(missing_uids, verified_at), arg_max(ok, verified_at)
FROM verifications GROUP BY study_uid
"""

INSTANCES_LEFT = """
SELECT i.study_uid, i.sop_instance_uid, i.series_uid, i.sop_class_uid, i.transfer_syntax,
       i.spool_name, i.state, coalesce(i.dest_sop_instance_uid, i.sop_instance_uid),
       i.checksum
FROM open_instances i JOIN study_status r USING (study_uid)
WHERE r.status <> 'verified'
"""


def planned_facts(plan: Plan) -> Iterator[StudyPlanned]:
    """The plan's studies as ledger facts (recording them again changes nothing)."""
    for phase_index, phase in enumerate(plan.phases):
        for order, (study, device) in enumerate(zip(phase.studies, phase.devices, strict=True)):
            yield StudyPlanned(study_uid=study.study_uid, study_date=study.study_date,
                               modality=study.modality, tier=study.location, device=device,
                               planned_instances=study.instances,
                               planned_mb=study.estimated_mb, phase_index=phase_index,
                               order_index=order)


def works_left(ledger: Ledger, plan: Plan, limit: int | None) -> list[StudyWork]:
    """The plan's studies the ledger does not show verified, in plan order (first `limit`)."""
    left = {row[0] for row in ledger.query(STUDIES_LEFT)}
    works: list[StudyWork] = []
    for phase_index, phase in enumerate(plan.phases):
        for order, (study, device) in enumerate(zip(phase.studies, phase.devices, strict=True)):
            if study.study_uid in left:
                works.append(_work(study, phase_index, order, device))
                if limit is not None and len(works) >= limit:
                    return works
    return works


def _work(study: Study, phase: int, order: int, device: str) -> StudyWork:
    return StudyWork(study, phase, order, device, expected=study.instances)


def restore_instances(ledger: Ledger, works: list[StudyWork], spool: Spool,
                      held_at: HeldAt) -> list[str]:
    """What each study already has from earlier runs; returns the SOP UIDs to forward again.

    Forwarded instances are remembered (a new retrieve discards their duplicates); those an
    earlier run held in memory (cut-through) are looked up at the destination (`held_at`)
    and recorded as sent if it holds them, else forgotten; received ones still in the
    spool are forwarded again if their file still holds what was received (its content
    checksum, recorded at receipt: a power cut may leave a reused spool file stale or
    mixed); those whose file is gone or damaged are forgotten (the study is retrieved
    again; a damaged one is recorded as a `spool_file_damaged` event). A study
    whose instances all reached the destination before is checked there first instead of
    being retrieved.
    """
    by_uid = {w.uid: w for w in works}
    missing = {uid: set(uids) for uid, uids, ok in ledger.query(_SHORT) if not ok and uids}
    again: list[str] = []
    in_memory: dict[str, list[str]] = {}
    for row in ledger.query(INSTANCES_LEFT):
        study_uid, sop, series, sop_class, syntax, spool_name, state, dest, checksum = row
        work = by_uid.get(study_uid)
        if work is None or sop in missing.get(study_uid, ()):
            continue  # not this run's, or lost at the destination: retrieve it again
        copy = Copy(series, sop_class, syntax, spool_name)
        if state in ("forwarded", "verified"):
            work.received[sop] = copy
            work.forwarded.add(sop)
            if dest != sop:
                work.dest_uids[sop] = dest
        elif spool_name == IN_MEMORY:
            work.received[sop] = copy
            in_memory.setdefault(study_uid, []).append(sop)
        elif _intact(ledger, spool.root / spool_name, checksum, sop, study_uid):
            work.received[sop] = copy
            work.forwarding.add(sop)
            again.append(sop)
    for study_uid, sops in in_memory.items():
        _settle_held_in_memory(ledger, by_uid[study_uid], sops, held_at(study_uid, sops))
    for work in works:
        if work.touched and work.received and not work.forwarding \
                and len(work.forwarded) >= (work.expected or 1):
            work.stage = Stage.VERIFYING
    return again


def _settle_held_in_memory(ledger: Ledger, work: StudyWork, sops: list[str],
                           held: set[str]) -> None:
    """Instances an earlier run held only in memory (cut-through) and did not record as
    sent: sent, when the destination holds them (the run died before recording it), else
    forgotten (the study is retrieved again)."""
    for sop in sops:
        if sop in held:
            ledger.record_forwarded(sop_instance_uid=sop, study_uid=work.uid, ok=True,
                                    status=0x0000, reason="already at the destination")
            work.forwarded.add(sop)
        else:
            del work.received[sop]


def _intact(ledger: Ledger, path: Path, checksum: str | None, sop: str, study_uid: str) -> bool:
    """Whether a spooled file is there and holds what was received (when its checksum is
    known: receipts of older versions have none); never for an instance that was held in
    memory (cut-through: lost with the run, retrieved again)."""
    if path.name in ("", IN_MEMORY) or not path.is_file():
        return False
    if checksum is None:
        return True
    found = file_checksum(path)
    if found == checksum:
        return True
    ledger.record_event(EventKind.SPOOL_FILE_DAMAGED, study_uid=study_uid,
                        detail={"sop_instance_uid": sop, "expected": checksum, "found": found})
    return False


def remove_orphans(ledger: Ledger, spool: Spool) -> int:
    """Delete spool files no unforwarded instance refers to (forwarded, or never recorded)."""
    keep = {row[0] for row in ledger.query(
        "SELECT spool_name FROM open_instances WHERE state IN ('received', 'quarantined')")}
    removed = 0
    for entry in spool.existing():
        if entry.name not in keep:
            spool.remove(entry.name)
            removed += 1
    return removed
