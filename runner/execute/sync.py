"""`pacsmig sync`: catch-up until cutover. The census is taken again, compared with the one
before it in the ledger (new studies, studies whose instance count changed, studies gone
from the source), recorded, and what is not verified is migrated: new studies whole, and of
a study that grew only the instances the destination lacks (the listener discards the
copies of instances already sent). Nothing is ever deleted at the destination. Run right
after another sync, it finds nothing changed and moves nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from runner.execute.run import RunSummary, open_ledger, run_migration
from runner.inventory.model import Study
from runner.morph.loaded import LoadedProfile
from runner.plan.model import Plan

# What the ledger knew of the source before this census: every study still held by it.
_KNOWN = """
SELECT c.study_uid, c.instances, c.study_date FROM census_studies c WHERE c.gone_at IS NULL
UNION ALL
SELECT s.study_uid, s.planned_instances, s.study_date FROM studies s
WHERE s.study_uid NOT IN (SELECT study_uid FROM census_studies)
"""


@dataclass(frozen=True, slots=True)
class Delta:
    """What a census found changed since the ledger's last view of the source."""

    new: int
    changed: int
    gone: int

    def line(self, plan: Plan) -> str:
        """The sync's finding for a person."""
        scope = f" dated from {plan.census.since}" if plan.census.since else ""
        return (f"Sync: the source holds {plan.source_studies:,} studies{scope}: {self.new:,} "
                f"new, {self.changed:,} changed (instances added or removed), {self.gone:,} "
                "gone from the source (kept at the destination)")


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """The census's delta and the run that followed it."""

    delta: Delta
    run: RunSummary

    def lines(self, plan: Plan) -> list[str]:
        """The sync for a person."""
        return [self.delta.line(plan), *self.run.lines()]


def delta_of(known: dict[str, tuple[int | None, date | None]], plan: Plan) -> Delta:
    """New, changed and gone studies of `plan`'s census against `known` (study -> count,
    date). Only a complete census can say a study is gone; a partial one (since a date) only
    of studies dated since then."""
    found = {s.study_uid: s for s in _census_studies(plan)}
    new = sum(1 for uid in found if uid not in known)
    changed = sum(1 for uid, s in found.items() if uid in known
                  and s.instances is not None and known[uid][0] is not None
                  and s.instances != known[uid][0])
    since = plan.census.since
    gone = 0
    if plan.census.complete and plan.census.of_source:
        gone = sum(1 for uid, (_, day) in known.items() if uid not in found
                   and (since is None or (day is not None and day >= since)))
    return Delta(new, changed, gone)


def _census_studies(plan: Plan) -> list[Study]:
    return [*(s for p in plan.phases for s in p.studies), *(e.study for e in plan.excluded)]


def sync_migration(loaded: LoadedProfile, plan: Plan, write: Callable[[str], None],
                   is_tty: bool) -> SyncSummary:
    """Compare `plan`'s census with the ledger, then migrate what is not verified."""
    with open_ledger(loaded) as ledger:
        known = {uid: (count, day) for uid, count, day in ledger.query(_KNOWN)}
    delta = delta_of(known, plan)
    write(delta.line(plan))
    summary = run_migration(loaded, plan, None, write, is_tty, command="sync",
                            delta=(delta.new, delta.changed, delta.gone))
    return SyncSummary(delta, summary)
