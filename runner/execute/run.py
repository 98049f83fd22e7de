"""`pacsmig run`: record the run and the plan's census, pick up where the ledger stands, then
build and serve the run's stages (runner.execute.wiring)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from runner import __version__
from runner.dicom.arena import Arena
from runner.dicom.spool import Spool
from runner.errors import DicomError
from runner.execute import wiring
from runner.execute.census import census_fact
from runner.execute.destination import answers, named
from runner.execute.forecast_record import record_forecast
from runner.execute.peers import check_tls
from runner.execute.progress import ProgressPrinter
from runner.execute.resume import planned_facts, remove_orphans, restore_instances, works_left
from runner.execute.scheduler import WallClock as WallClock
from runner.execute.sending.seam import Senders
from runner.execute.site import listener_config as listener_config
from runner.execute.site import open_ledger as open_ledger
from runner.execute.state import RunState
from runner.execute.wiring import INTERRUPTED as INTERRUPTED
from runner.execute.work import Stage, StudyWork
from runner.ledger import Ledger
from runner.morph.accession import Accessions
from runner.morph.loaded import LoadedProfile
from runner.plan.model import Plan


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How a run ended."""

    studies: int
    verified: int
    incomplete: int
    failed: int
    left: int
    received: int
    forwarded: int
    refused: int
    stopped: str | None
    interrupted: bool = False
    census_gaps: int = 0
    reasons: tuple[tuple[str, int], ...] = ()  # (reason, studies) of the studies given up

    @property
    def complete(self) -> bool:
        """Every study of this run verified, and the census found everything it asked for."""
        return self.verified == self.studies and self.stopped is None and not self.census_gaps

    def lines(self) -> list[str]:
        """The summary for a person."""
        lines = [f"Run finished: {self.verified:,} of {self.studies:,} studies verified, "
                 f"{self.incomplete:,} incomplete, {self.failed:,} failed, "
                 f"{self.left:,} not finished",
                 f"Instances: {self.received:,} received, {self.forwarded:,} forwarded, "
                 f"{self.refused:,} refused at the listener"]
        lines += [f"  {count:,} failed: {reason}" for reason, count in self.reasons]
        if self.stopped:
            lines.append(f"Stopped: {self.stopped}")
        if self.census_gaps:
            lines.append(f"Census incomplete: {self.census_gaps:,} queries were not answered "
                         "fully; the source may hold studies this run did not see "
                         "(`pacsmig plan` lists them)")
        return lines


def run_migration(loaded: LoadedProfile, plan: Plan, limit: int | None,
                  write: Callable[[str], None], is_tty: bool,
                  wall_clock: WallClock = datetime.now, command: str = "run",
                  delta: tuple[int, int, int] | None = None) -> RunSummary:
    """Migrate the plan's studies not yet verified (the first `limit`); resumable.

    The plan's census is recorded first (with `delta`, what `sync` found changed)."""
    check_tls(loaded.profile)
    arena = wiring.memory_spool(loaded.profile)
    job = wiring.sending_job(loaded.profile, plan, arena)
    preforked = wiring.prefork(loaded.profile, job)  # before any thread: sending.pool.Preforked
    try:
        _check_destination(loaded)
        ledger = open_ledger(loaded)
    except BaseException:
        if preforked is not None:
            preforked.close()
        if arena is not None:
            arena.close()
        raise
    try:
        run_id = ledger.start_run(profile_path=str(loaded.path), profile_sha256=loaded.sha256,
                                  runner_version=__version__, command=command)
        accessions = Accessions(plan.rules, loaded.profile.reports.mask_identifiers)
        ledger.record(census_fact(plan, command, run_id, accessions, delta))
        ledger.upsert_studies(planned_facts(plan))
        ledger.flush()
        summary = _run(loaded, plan, ledger, limit, write, is_tty, wall_clock,
                       wiring.senders(loaded.profile, job, preforked), arena)
        ledger.end_run()
        return summary
    finally:
        if preforked is not None:
            preforked.close()
        ledger.close()
        if arena is not None:
            arena.close()


def _check_destination(loaded: LoadedProfile) -> None:
    """A destination that is down at the start: say so, change nothing."""
    ok, detail = answers(loaded.profile)
    if not ok:
        raise DicomError(f"destination {named(loaded.profile)} does not answer {detail}")


def _run(loaded: LoadedProfile, plan: Plan, ledger: Ledger, limit: int | None,
         write: Callable[[str], None], is_tty: bool, wall_clock: WallClock,
         senders: Senders, arena: Arena | None) -> RunSummary:
    profile = loaded.profile
    spool = Spool(profile.listener.spool_dir, int(profile.listener.max_spool_gb * 1e9))
    spool.adopt_temp()
    remove_orphans(ledger, spool)
    works = works_left(ledger, plan, limit)
    record_forecast(ledger, profile, plan, works, wall_clock)
    again = set(restore_instances(ledger, works, spool, wiring.destination_holds(profile)))
    stages = wiring.build(profile, plan, ledger, works, spool, listener_config(loaded),
                          senders, wall_clock, arena)
    printer = ProgressPrinter(write, is_tty)

    def show(force: bool = False) -> None:
        printer.show(stages.snapshot, force)

    write(f"Census: the source holds {plan.source_studies:,} studies: {plan.studies:,} planned"
          f" ({plan.undated:,} without a usable date), {len(plan.excluded):,} excluded"
          + ("" if plan.census.complete else
             f"; INCOMPLETE, {len(plan.census.gaps):,} queries not answered fully"))
    write(f"Migrating {len(works):,} of the plan's {plan.studies:,} studies (the others are "
          f"verified{' or beyond --limit' if limit else ''}); ledger {ledger.path}")
    stopped = wiring.serve(stages, works, again, lambda: show(False))
    show(force=True)
    return replace(_summary(stages.state, list(stages.state.works.values()), stopped),
                   census_gaps=len(plan.census.gaps))


def _summary(state: RunState, works: list[StudyWork], stopped: str | None) -> RunSummary:
    stages = [w.stage for w in works]
    return RunSummary(
        studies=len(works), verified=stages.count(Stage.VERIFIED),
        incomplete=stages.count(Stage.INCOMPLETE), failed=stages.count(Stage.FAILED),
        left=sum(1 for w in works if not w.final), received=state.counters.received,
        forwarded=state.counters.forwarded, refused=state.counters.refused, stopped=stopped,
        interrupted=stopped == INTERRUPTED,
        reasons=tuple(Counter(w.reason or "no reason recorded" for w in works
                              if w.stage is Stage.FAILED).most_common()))
