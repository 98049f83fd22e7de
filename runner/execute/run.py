"""`pacsmig run`: wire the engine to the listener, forwarder, verifier and ledger, and run it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from runner import __version__
from runner.dicom.echo import c_echo
from runner.dicom.listener import Listener, ListenerCallbacks
from runner.dicom.spool import Spool
from runner.dicom.verify import instances_present
from runner.errors import DicomError
from runner.execute.census import census_fact
from runner.execute.delayqueue import Backoff
from runner.execute.engine import Engine
from runner.execute.progress import ProgressPrinter
from runner.execute.resume import planned_facts, remove_orphans, restore_instances, works_left
from runner.execute.sending.dimse import DimseSenders
from runner.execute.sending.forwarder import Forwarder
from runner.execute.sending.pool import Preforked
from runner.execute.sending.prepare import Job
from runner.execute.sending.seam import ForwardItem, ForwardResult
from runner.execute.settlement.verifier import CommitmentWaiter, Verifier
from runner.execute.site import listener_config as listener_config
from runner.execute.site import open_ledger as open_ledger
from runner.execute.work import Stage, StudyWork
from runner.ledger import Ledger
from runner.plan.model import Plan
from runner.profile.load import LoadedProfile
from runner.profile.peers import check_tls, destination_peer, dicom_settings

INTERRUPTED = "interrupted (Ctrl-C): in-flight retrieves abandoned; run again to resume"

# The schedule's clock: the local time in a zone (tests speed it up).
WallClock = Callable[[ZoneInfo], datetime]


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
    preforked = _prefork(loaded)  # before any thread starts: see sending.pool.Preforked
    try:
        _check_destination(loaded)
        ledger = open_ledger(loaded)
    except BaseException:
        preforked.close()
        raise
    try:
        run_id = ledger.start_run(profile_path=str(loaded.path), profile_sha256=loaded.sha256,
                                  runner_version=__version__, command=command)
        ledger.record(census_fact(plan, command, run_id, delta))
        ledger.upsert_studies(planned_facts(plan))
        ledger.flush()
        summary = _run(loaded, plan, ledger, limit, write, is_tty, wall_clock, preforked)
        ledger.end_run()
        return summary
    finally:
        preforked.close()
        ledger.close()


def _check_destination(loaded: LoadedProfile) -> None:
    """A destination that is down at the start: say so, change nothing."""
    profile = loaded.profile
    peer = destination_peer(profile)
    echo = c_echo(peer, profile.source.calling_ae_title, dicom_settings(profile))
    if not echo.ok:
        raise DicomError(f"destination {profile.destination.name} ({peer}) does not answer "
                         f"C-ECHO: {echo.detail}")


def _prefork(loaded: LoadedProfile) -> Preforked:
    """The forwarding workers, forked now, while the runner has no other thread."""
    profile = loaded.profile
    job = Job(profile.rules(), _value_tags(loaded))
    return Preforked.fork(profile.destination.max_associations, destination_peer(profile),
                          profile.source.calling_ae_title, dicom_settings(profile), job)


def _run(loaded: LoadedProfile, plan: Plan, ledger: Ledger, limit: int | None,
         write: Callable[[str], None], is_tty: bool, wall_clock: WallClock,
         preforked: Preforked) -> RunSummary:
    profile = loaded.profile
    settings = dicom_settings(profile)
    spool = Spool(profile.listener.spool_dir, int(profile.listener.max_spool_gb * 1e9))
    spool.adopt_temp()
    remove_orphans(ledger, spool)
    works = works_left(ledger, plan, limit)
    again = set(restore_instances(ledger, works, spool))
    engine = Engine(profile, plan, ledger, works, spool, settings, wall_clock)
    waiter = CommitmentWaiter()
    senders = DimseSenders(destination_peer(profile), profile.source.calling_ae_title, settings,
                           Job(profile.rules(), _value_tags(loaded)), preforked=preforked)
    engine.forwarder = Forwarder(
        senders, profile.destination.max_associations, profile.retries.store_attempts,
        Backoff(profile.retries.backoff_seconds, profile.retries.backoff_max_seconds),
        engine.on_forwarded, stop_within=max(settings.dimse_timeout, 5.0))
    engine.verifier = Verifier(destination_peer(profile), profile.source.calling_ae_title,
                               settings, profile.destination.verify, waiter,
                               value_tags=_value_tags(loaded))
    listener = Listener(listener_config(loaded), spool, ListenerCallbacks(
        decide=engine.decide, on_stored=engine.on_stored, on_rejected=engine.on_rejected,
        on_commitment=waiter.deliver, on_turned_away=engine.on_turned_away))
    printer = ProgressPrinter(write, is_tty)

    def show(force: bool = False) -> None:
        printer.show(lambda: engine.tally.snapshot(
            engine.counters.received_bytes, engine.counters.started_at,
            {d: s.in_flight for d, s in engine.devices.items()}), force)

    write(f"Census: the source holds {plan.source_studies:,} studies: {plan.studies:,} planned"
          f" ({plan.undated:,} without a usable date), {len(plan.excluded):,} excluded"
          + ("" if plan.census.complete else
             f"; INCOMPLETE, {len(plan.census.gaps):,} queries not answered fully"))
    write(f"Migrating {len(works):,} of the plan's {plan.studies:,} studies (the others are "
          f"verified{' or beyond --limit' if limit else ''}); ledger {ledger.path}")
    stopped = _serve(engine, listener, works, again, show)
    show(force=True)
    return replace(_summary(engine, works, stopped), census_gaps=len(plan.census.gaps))


def _serve(engine: Engine, listener: Listener, works: list[StudyWork], again: set[str],
           show: Callable[[bool], None]) -> str | None:
    """Run the threads until the work is settled; returns why it stopped early, if it did."""
    assert engine.forwarder is not None
    listener.start()
    engine.forwarder.start()
    verifier = threading.Thread(target=engine.verify_loop, name="verifier", daemon=True)
    verifier.start()
    janitor = _Sweeper(engine)
    janitor.start()
    stopped: str | None = None
    try:
        _resubmit(engine, works, again)
        engine.dispatch_until_done(lambda: show(False))
        stopped = engine.fatal
    except KeyboardInterrupt:
        stopped = INTERRUPTED
    finally:
        engine.stopping.set()
        engine.abandon_retrieves(timeout=engine.settings.acse_timeout)
        listener.stop()
        engine.forwarder.close()
        engine.verify_queue.close()
        verifier.join(timeout=engine.settings.dimse_timeout)  # a check under way finishes
        janitor.stop()
        engine.janitor.sweep()
        engine.spool.empty_free()  # nothing is written any more: give their space back
    return stopped


def _resubmit(engine: Engine, works: list[StudyWork], again: set[str]) -> None:
    """Forward again what an earlier run received but did not (or did not record) send."""
    for work in works:
        pending = sorted(work.forwarding & again) if work.touched else []
        held = _already_held(engine, work.uid, pending) if pending else set()
        for sop in pending:
            copy = work.received[sop]
            item = ForwardItem(sop, work.uid, copy.sop_class_uid, copy.transfer_syntax,
                               engine.spool.root / copy.spool_name, copy.spool_name)
            if sop in held:
                engine.on_forwarded(ForwardResult(item, True, True, 0x0000,
                                                  "already at the destination"))
            else:
                assert engine.forwarder is not None
                engine.forwarder.submit(item)
        if work.stage is Stage.VERIFYING:
            engine.verify_queue.put(work.uid)


def _already_held(engine: Engine, study_uid: str, sops: list[str]) -> set[str]:
    """Which of `sops` the destination holds already (sent before a crash, not recorded)."""
    if engine.profile.morphing_options.allow_uid_changes:
        return set()  # destination UIDs are not known for unrecorded sends
    assert engine.verifier is not None
    found = instances_present(engine.verifier.destination, engine.verifier.calling_ae,
                              engine.settings, study_uid)
    return set(sops) & found.sop_uids if found.ok else set()


class _Sweeper(threading.Thread):
    """Removes forwarded spool files every half second, once the ledger holds the forward."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(name="janitor", daemon=True)
        self.engine = engine
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.5):
            self.engine.janitor.sweep()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def _value_tags(loaded: LoadedProfile) -> tuple[int, ...]:
    """The tags whose morphed values the verification checks (verify: instances only)."""
    profile = loaded.profile
    if profile.destination.verify != "instances":
        return ()
    return tuple(sorted(profile.rules().touched_tags))


def _summary(engine: Engine, works: list[StudyWork], stopped: str | None) -> RunSummary:
    stages = [w.stage for w in works]
    return RunSummary(
        studies=len(works), verified=stages.count(Stage.VERIFIED),
        incomplete=stages.count(Stage.INCOMPLETE), failed=stages.count(Stage.FAILED),
        left=sum(1 for w in works if not w.final), received=engine.counters.received,
        forwarded=engine.counters.forwarded, refused=engine.counters.refused, stopped=stopped,
        interrupted=stopped == INTERRUPTED,
        reasons=tuple(Counter(w.reason or "no reason recorded" for w in works
                              if w.stage is Stage.FAILED).most_common()))
