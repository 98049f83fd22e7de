"""The repair of a study found short at the destination: forget what is missing, so the next
retrieve brings it again (only those instances when each is known by its series, by an
image-level C-MOVE; else the whole study, duplicates discarded), or give the study up when
what is missing is only what the destination refused."""

from __future__ import annotations

from dataclasses import dataclass

from runner.execute.work import StudyWork


@dataclass(frozen=True, slots=True)
class Repair:
    """What to do with a short study: retrieve it again, or give it up; and why."""

    give_up: bool
    reason: str


def repair(work: StudyWork, missing: list[str], source_count: int,
           different: frozenset[str]) -> Repair:
    """Forget the `missing` instances of `work` (and say whether to retrieve it again)."""
    if work.set_aside and not (set(missing) - set(work.set_aside)) \
            and len(work.received) >= source_count:
        return Repair(True, f"{len(work.set_aside)} instances refused by the destination: "
                            f"{next(iter(work.set_aside.values()))}")
    known = [(work.received[sop].series_uid, sop) for sop in missing if sop in work.received]
    # only these instances are missing, all known by series: fetch just them next time
    whole = len(known) < len(missing) or len(work.received) < source_count
    work.repair = () if whole or not known else tuple(sorted(known))
    for sop in missing:
        work.forwarded.discard(sop)
        work.received.pop(sop, None)
        work.values.pop(sop, None)
    reason = (f"{len(missing)} instances missing at the destination; "
              f"{len(work.received)} of {source_count} received")
    if different:
        reason = (f"{len(different)} instances held at the destination with other values than "
                  "the rules made (a different version under the same SOP Instance UID?); "
                  + reason)
    return Repair(False, reason)
