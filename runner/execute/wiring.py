"""The one place a run's stages are built, started and shut down.

The flow goes one way: the scheduler starts retrieves (C-MOVE to the runner's listener);
intake takes the stores in and hands each spooled instance to sending; sending forwards it
(the senders picked here: DIMSE C-STORE) and hands each settled study to settlement;
settlement checks the study at the destination and verifies it, or sends it back to the
scheduler's queues (repair), or gives it up. Each stage is given its collaborators when it
is built, owns its threads, and is stopped here, in the order the flow runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from runner.destinations.holdings import Holdings
from runner.dicom.arena import Arena
from runner.dicom.listener import ListenerConfig
from runner.dicom.peer import DicomSettings
from runner.dicom.spool import Spool
from runner.execute.alerts import Alerter
from runner.execute.arrivals import ArrivalsFinder
from runner.execute.conflicts import PATIENT_ID, ConflictCheck
from runner.execute.delayqueue import Backoff
from runner.execute.destination import credentials, holdings, named, web_service
from runner.execute.devices import DeviceState
from runner.execute.inflight import InFlight
from runner.execute.intake import Intake
from runner.execute.peers import (
    destination_peer,
    device_peer,
    device_peers,
    dicom_settings,
    is_dicomweb,
)
from runner.execute.priority.finder import PatientFinder
from runner.execute.priority.inbox import INBOX_FILENAME, Inbox
from runner.execute.priority.lane import PriorityLane
from runner.execute.priority.triggers import Triggers
from runner.execute.progress import Snapshot
from runner.execute.retrieving import Moves, Retriever
from runner.execute.scheduler import Scheduler, WallClock, redates_due
from runner.execute.sending.dicomweb import DicomWebSenders, WebLink
from runner.execute.sending.dimse import DimseSenders
from runner.execute.sending.holding import Holding
from runner.execute.sending.janitor import Janitor
from runner.execute.sending.pool import Preforked
from runner.execute.sending.prepare import Job
from runner.execute.sending.seam import ForwardItem, ForwardResult, Senders
from runner.execute.sending.stage import Pool, Sending
from runner.execute.settlement.stage import Settlement
from runner.execute.settlement.verifier import CommitmentWaiter, Verifier
from runner.execute.state import RetryPolicy, RunState
from runner.execute.work import StudyWork
from runner.inventory.cfind import CensusRequest, inventory_by_cfind
from runner.inventory.model import Study
from runner.ledger import Ledger
from runner.ledger.queries import retrieve_timings
from runner.morph import RuleSet
from runner.plan.compile import redate_volume
from runner.plan.model import Plan
from runner.plan.priority import PriorRules, patient_id_tables
from runner.profile.models import SiteProfile
from runner.tiering.calibrate import StudySizes, recall_allowance, study_sizes
from runner.tiering.clinical import expected_inflow
from runner.tiering.params import TierParameters

INTERRUPTED = "interrupted (Ctrl-C): in-flight retrieves abandoned; run again to resume"


@dataclass(frozen=True, slots=True)
class Stages:
    """A run's stages, built and connected."""

    profile: SiteProfile
    settings: DicomSettings
    spool: Spool
    state: RunState
    scheduler: Scheduler
    intake: Intake
    sending: Sending
    settlement: Settlement
    lane: PriorityLane
    triggers: Triggers
    arrivals: ArrivalsFinder | None

    def snapshot(self) -> Snapshot:
        """The numbers the progress line shows."""
        counters = self.state.counters
        return self.state.tally.snapshot(
            counters.received_bytes, counters.started_at,
            {d: s.in_flight for d, s in self.scheduler.devices.items()})


def value_tags(profile: SiteProfile, rules: RuleSet) -> tuple[int, ...]:
    """The tags whose morphed values the verification checks (verify: instances only)."""
    if profile.destination.verify != "instances":
        return ()
    return tuple(sorted(rules.touched_tags))


def memory_spool(profile: SiteProfile) -> Arena | None:
    """The memory for instances on their way through (cut-through), if the profile gives
    any (`listener.max_memory_mb`)."""
    megabytes = profile.listener.max_memory_mb
    return Arena(megabytes * 1_000_000) if megabytes else None


def sending_job(profile: SiteProfile, plan: Plan, arena: Arena | None) -> Job:
    """What every sender does to an instance: the plan's rules (compiled once), the values
    to report for the check, and where the memory spool is."""
    return Job(plan.rules, value_tags(profile, plan.rules),
               arena.handle if arena is not None else None)


def prefork(profile: SiteProfile, job: Job) -> Preforked | None:
    """The forwarding workers, forked now, while the runner has no other thread; none for a
    DICOMweb destination (its senders are threads)."""
    if is_dicomweb(profile):
        return None
    return Preforked.fork(profile.destination.max_associations, destination_peer(profile),
                          profile.source.calling_ae_title, dicom_settings(profile), job)


def senders(profile: SiteProfile, job: Job, preforked: Preforked | None) -> Senders:
    """The senders to the profile's destination: STOW-RS for a DICOMweb one, else C-STORE
    (workers from `preforked`)."""
    service = web_service(profile)
    if service is not None:
        link = WebLink(service, credentials(service), _no_fatal, named(profile))
        return DicomWebSenders(link, job)
    return dimse_senders(profile, job, preforked)


def _no_fatal(_reason: str) -> None:
    """Until `build` gives the senders the run's state to stop."""


def dimse_senders(profile: SiteProfile, job: Job,
                  preforked: Preforked | None) -> DimseSenders:
    """The DIMSE C-STORE senders to the profile's destination (workers from `preforked`)."""
    return DimseSenders(destination_peer(profile), profile.source.calling_ae_title,
                        dicom_settings(profile), job, preforked=preforked)


def build(profile: SiteProfile, plan: Plan, ledger: Ledger, works: list[StudyWork],
          spool: Spool, listener: ListenerConfig, senders: Senders,
          wall_clock: WallClock = datetime.now, arena: Arena | None = None) -> Stages:
    """The stages of a run of `works`, each given what it works with, none started."""
    settings = dicom_settings(profile)
    retries = profile.retries
    backoff = Backoff(retries.backoff_seconds, retries.backoff_max_seconds)
    state = RunState(works, [p.name for p in plan.phases], (d.id for d in plan.devices),
                     ledger, RetryPolicy(retries.retrieve_attempts, backoff),
                     shared_phases=profile.source.balance_devices)
    held = holdings(profile)
    if isinstance(senders, DicomWebSenders):
        senders.stop_run_with(lambda reason: _stop(state, reason))
    verifier = Verifier(None if is_dicomweb(profile) else destination_peer(profile),
                        profile.source.calling_ae_title, settings, profile.destination.verify,
                        CommitmentWaiter(), value_tags=value_tags(profile, plan.rules),
                        holdings=held)
    settlement = Settlement(state, ledger, verifier, plan.rules, retries.verify_attempts,
                            backoff)
    janitor = Janitor(spool, ledger)
    pool = Pool(profile.destination.max_associations, retries.store_attempts, backoff,
                stop_within=max(settings.dimse_timeout, 5.0))
    sending = Sending(state, ledger, senders, pool, Holding(state, ledger, spool, janitor, arena),
                      settlement)
    arrivals = arrivals_finder(profile, plan, settings, wall_clock)
    pilot = retrieve_timings(ledger)  # what earlier runs measured: recalls, study sizes
    inflight = InFlight({d.id: d.storing_aes() for d in profile.source.devices},
                        profile.source.calling_ae_title)
    intake = Intake(state, inflight, ledger, listener, spool, sending.submit,
                    verifier.waiter.deliver, arena)
    retriever = Retriever(state, inflight, ledger, _moves(profile, settings, plan.rules, held),
                          _devices(profile, plan),
                          redates_due(plan, ledger, wall_clock, arrivals or tuple,
                                      arrivals.wake if arrivals else lambda: None,
                                      *redate_volumes(profile, plan, study_sizes(pilot))),
                          Alerter(profile.site.id, profile.alert), settlement.offer,
                          recall_allowance(profile.tiering.recall_timeout, pilot))
    scheduler = Scheduler(plan, state, ledger, inflight, retriever, spool, janitor,
                          profile.source.health.stall_timeout, wall_clock)
    lane = priority_lane(profile, plan, state, ledger, settings)
    return Stages(profile, settings, spool, state, scheduler, intake, sending, settlement,
                  lane, Triggers(profile, lane), arrivals)


def arrivals_finder(profile: SiteProfile, plan: Plan, settings: DicomSettings,
                    wall_clock: WallClock) -> ArrivalsFinder | None:
    """The look for studies stored at the source since the census (re-dating keeps them
    local too): when a round begins and twice a re-date period, by the census's C-FIND;
    none without re-dating."""
    if not plan.redate.recent_days:
        return None
    inventory = profile.source.inventory
    zone = ZoneInfo(plan.timezone)

    def find(since: date, today: date) -> list[Study]:
        request = CensusRequest(since, today, 1, sweep=False,
                                max_results=inventory.max_results,
                                instance_counts=inventory.instance_counts,
                                modalities=inventory.modalities)
        return list(inventory_by_cfind(device_peers(profile),
                                       profile.source.calling_ae_title, settings,
                                       request).studies)

    return ArrivalsFinder(find, plan.today, lambda: wall_clock(zone).date(),
                          plan.redate.every_hours * 1800.0)


def priority_lane(profile: SiteProfile, plan: Plan, state: RunState, ledger: Ledger,
                  settings: DicomSettings) -> PriorityLane:
    """The run's priority lane: the patient's studies asked of the source's devices, the
    priors chosen by `priority.rules`, patient IDs mapped back through the rules' tables."""
    rules = profile.priority.rules
    finder = PatientFinder(device_peers(profile), profile.source.calling_ae_title, settings,
                           profile.source.inventory.modalities)
    tiers = [phase.tier for phase in plan.phases]

    def first_phase(study: Study) -> int:
        return tiers.index(study.location) if study.location in tiers else 0

    return PriorityLane(state, ledger, finder,
                        PriorRules(rules.max_studies, rules.max_age_years, rules.same_modality,
                                   rules.same_body_part),
                        patient_id_tables(plan.rules), profile.reports.mask_identifiers,
                        first_phase=first_phase,
                        inbox=Inbox(profile.reports.dir / INBOX_FILENAME))


def _stop(state: RunState, reason: str) -> None:
    """End the run for `reason` (the first reason given stands)."""
    with state.lock:
        state.fatal = state.fatal or reason
        state.wake.notify_all()


def _moves(profile: SiteProfile, settings: DicomSettings, rules: RuleSet,
           held: Holdings) -> Moves:
    return Moves(profile.source.calling_ae_title, profile.listener.ae_title, settings,
                 held, profile.destination.conflicts,
                 ConflictCheck(PATIENT_ID not in rules.touched_tags, not rules.changes_identity))


def _devices(profile: SiteProfile, plan: Plan) -> dict[str, DeviceState]:
    return {d.id: DeviceState(d.id, device_peer(profile, d.id), d.pinned_throttle,
                              profile.source.health)
            for d in plan.devices}


def serve(stages: Stages, works: list[StudyWork], again: set[str],
          tick: Callable[[], None]) -> str | None:
    """Run the stages until the work is settled; why the run stopped early, if it did.

    `again`: the SOP Instance UIDs an earlier run received and may not have forwarded."""
    stages.intake.start()
    stages.sending.start()
    stages.settlement.start()
    stopped: str | None = None
    interrupted = threading.Event()
    try:
        with _ctrl_c_sets(interrupted):
            _resume(stages, works, again)
            stages.triggers.start()
            stages.lane.start()
            if stages.arrivals is not None:
                stages.arrivals.start()
            stages.scheduler.dispatch_until_done(tick, interrupted)
        stopped = INTERRUPTED if interrupted.is_set() else stages.state.fatal
    except KeyboardInterrupt:  # a run outside the main thread, or a second Ctrl-C
        stopped = INTERRUPTED
    finally:
        _shut_down(stages)
    return stopped


@contextmanager
def _ctrl_c_sets(interrupted: threading.Event) -> Iterator[None]:
    """Ctrl-C sets `interrupted` (the dispatcher stops within half a second) instead of
    raising KeyboardInterrupt wherever the main thread happens to be: inside a lock's
    wait, a half-done hand-over, the ledger's queue, where the shut-down would then hang.
    A second Ctrl-C raises as usual. Outside the main thread, or when SIGINT is ignored (a
    run started in the background with `nohup` or `&`), nothing changes."""
    before = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or before is signal.SIG_IGN:
        yield
        return

    def handler(_signum: int, _frame: object) -> None:
        interrupted.set()
        signal.signal(signal.SIGINT, before)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _shut_down(stages: Stages) -> None:
    """Stop the stages in the order the flow runs: nothing new comes in, what is under way
    finishes or is abandoned, and every result is recorded."""
    stages.state.stopping.set()
    stages.triggers.stop()
    stages.lane.stop()
    if stages.arrivals is not None:
        stages.arrivals.stop()
    stages.scheduler.abandon(timeout=stages.settings.acse_timeout)
    stages.intake.stop()
    stages.sending.close()
    stages.settlement.close(timeout=stages.settings.dimse_timeout)  # a check finishes
    stages.spool.empty_free()  # nothing is written any more: give their space back


def _resume(stages: Stages, works: list[StudyWork], again: set[str]) -> None:
    """Forward again what an earlier run received but did not (or did not record) send, and
    check what it left waiting for its check."""
    held_at = destination_holds(stages.profile)
    for work in works:
        pending = sorted(work.forwarding & again) if work.touched else []
        held = held_at(work.uid, pending) if pending else set()
        for sop in pending:
            copy = work.received[sop]
            item = ForwardItem(sop, work.uid, copy.sop_class_uid, copy.transfer_syntax,
                               stages.spool.root / copy.spool_name, copy.spool_name)
            if sop in held:
                stages.sending.record(ForwardResult(item, True, True, 0x0000,
                                                    "already at the destination"))
            else:
                stages.sending.submit(item)
        stages.settlement.resume(work)


def destination_holds(profile: SiteProfile) -> Callable[[str, list[str]], set[str]]:
    """Which of a study's instances the destination holds already (sent before a crash, not
    recorded): one image-level C-FIND (or QIDO-RS) per study asked."""
    asked = holdings(profile)

    def held(study_uid: str, sops: list[str]) -> set[str]:
        if profile.morphing_options.allow_uid_changes:
            return set()  # destination UIDs are not known for unrecorded sends
        found = asked.present(study_uid)
        return set(sops) & found.sop_uids if found.ok else set()

    return held


def redate_volumes(profile: SiteProfile, plan: Plan,
                    sizes: StudySizes) -> tuple[float, float | None]:
    """MB a second new studies and clinicians' reads are expected to bring into the source's
    local store, and the MB after which a re-date round starts early (the plan's volume),
    each study of the MB a pilot run measured (`sizes`; as planned without one): the
    runner counts the recalls' real bytes towards it, as the forecast's model does."""
    studies = [study for phase in plan.phases for study in phase.studies]
    inflow = expected_inflow(TierParameters.from_profile(profile), studies, plan.today, sizes)
    if not sizes.retrieves:
        return inflow, plan.redate.volume_mb
    recent = set(plan.redate.study_uids)
    recent_mb = sum(sizes(s) for s in studies if s.study_uid in recent)
    return inflow, redate_volume(profile, studies, recent_mb, sizes)
