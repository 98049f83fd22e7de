"""The run: listener, per-device dispatch of C-MOVEs, forwarder, verification, retries.

Threads: the caller's thread dispatches retrieves (throttles, schedule, back-pressure) and
notices the end; one thread per retrieve in flight; the listener's association threads;
the forwarder's workers; one verifier. All working state is in `StudyWork` objects changed
under `self.lock`; every fact goes to the ledger's single writer after its side effect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from runner.dicom.echo import c_echo
from runner.dicom.listener import OUT_OF_RESOURCES, IncomingStore, Received, Rejection, Verdict
from runner.dicom.move import MoveHandle, MoveOutcome, MoveProgress
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.spool import Spool
from runner.dicom.status import StatusCategory
from runner.dicom.ul.acceptor import TurnedAway
from runner.dicom.verify import instances_present
from runner.execute.alerts import Alerter
from runner.execute.conflicts import (
    PATIENT_ID,
    RETURN_KEYS,
    Conflict,
    ConflictCheck,
    find_conflicts,
)
from runner.execute.delayqueue import Backoff, DelayQueue
from runner.execute.devices import DeviceState, is_device_trouble
from runner.execute.progress import Tally
from runner.execute.redate import DeadTime, Redates
from runner.execute.sending.forwarder import Forwarder
from runner.execute.sending.seam import ForwardItem, ForwardResult
from runner.execute.settlement.values import compare_values, expected_values
from runner.execute.settlement.verdict import verdict, verification_error
from runner.execute.settlement.verifier import METHODS, Check, Verifier
from runner.execute.throttle import CompiledThrottle, next_start, throttle_in_force
from runner.execute.work import Copy, DeviceQueues, Stage, StudyWork
from runner.ledger import EventKind, Ledger, RetrievePurpose, StudyStatus, VerificationMethod
from runner.ledger.queries import last_redates
from runner.plan.model import Plan
from runner.profile.models import SiteProfile
from runner.profile.peers import destination_peer, device_peer

log = logging.getLogger(__name__)

_IDLE_WAKE = 0.5  # seconds between looks at the schedule when nothing else happens
# Device trouble (lock-up, lost association) does not use up a study's retrieve attempts,
# up to this many times its attempts: a study that breaks every device still ends.
_TROUBLE_BUDGET = 10
_MAX_NOTES = 3  # listener refusals kept per retrieve (the same few repeat)
# Retrieves a study may lose to the runner's own full spool without spending an attempt
# (bounded: a study larger than the whole spool must still end).
_SPOOL_REFUNDS = 20


@dataclass
class Retrieve:
    """A C-MOVE in flight: which study, on which device, why, and its message id."""

    retrieve_id: str
    study_uid: str
    device: str
    purpose: RetrievePurpose
    msg_id: int
    started: float
    last_progress: float
    received: int = 0
    handle: MoveHandle = field(default_factory=MoveHandle)
    counts: MoveProgress | None = None
    listener_notes: list[str] = field(default_factory=list)  # what our listener refused
    reserved: int = 0  # spool bytes still expected from this retrieve (back-pressure)
    spool_refused: int = 0  # stores our own listener refused for a full spool meanwhile

    def note(self, text: str) -> None:
        """Something the runner's own listener refused while this retrieve was in flight."""
        if text not in self.listener_notes and len(self.listener_notes) < _MAX_NOTES:
            self.listener_notes.append(text)

    def explained(self, outcome: MoveOutcome) -> str:
        """The source's answer, and next to it what the runner's listener refused (when the
        retrieve did not bring everything): a 0xC000 or failed sub-operations are often
        the listener's doing, not the source's."""
        if not self.listener_notes or (outcome.ok and not outcome.failed):
            return outcome.detail
        return f"{outcome.detail}; the runner's listener {'; '.join(self.listener_notes)}"

    def progressed(self, progress: MoveProgress | None = None) -> None:
        """An instance arrived, or a pending response with new counts: not stalled.

        A pending response that repeats the last counts is not progress: a source that
        answers "pending" forever without moving anything is stalled all the same.
        """
        if progress is not None:
            if progress == self.counts:
                return
            self.counts = progress
        self.last_progress = time.monotonic()


@dataclass
class Counters:
    """Totals for the progress display and the summary."""

    received: int = 0
    received_bytes: int = 0
    forwarded: int = 0
    set_aside: int = 0
    refused: int = 0
    discarded: int = 0
    started_at: float = field(default_factory=time.monotonic)


class Engine:
    """One run of a plan: `dispatch_until_done()` returns when every study is settled or a
    stop is asked."""

    def __init__(self, profile: SiteProfile, plan: Plan, ledger: Ledger, works: list[StudyWork],
                 spool: Spool, settings: DicomSettings,
                 wall_clock: Callable[[ZoneInfo], datetime] = datetime.now) -> None:
        self.profile = profile
        self.plan = plan
        self.ledger = ledger
        self.spool = spool
        self.settings = settings
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.works = {w.uid: w for w in works}
        self.tally = Tally(works, [p.name for p in plan.phases])
        recent = set(plan.redate.study_uids)
        self.plan_studies = {s.study_uid: s for p in plan.phases for s in p.studies
                             if s.study_uid in recent}
        self.queues = DeviceQueues(d.id for d in plan.devices)
        self.devices = {d.id: DeviceState(d.id, device_peer(profile, d.id),
                                          d.pinned_throttle, profile.source.health)
                        for d in plan.devices}
        # Who may store a retrieve's instances: the device it went to, nobody else.
        self.storing_aes = {d.id: d.storing_aes() for d in profile.source.devices}
        self.alerter = Alerter(profile.site.id, profile.alert)
        self.redates = _redates(plan, ledger)
        self.dead = DeadTime()
        self.throttles = {t.name: CompiledThrottle.of(t) for t in plan.throttles}
        self.zone = ZoneInfo(plan.timezone)
        self.wall_clock = wall_clock  # the schedule's clock: the site's local time
        self.retrieves: dict[int, Retrieve] = {}
        self.by_study: dict[str, Retrieve] = {}
        self.counters = Counters()
        self.stopping = threading.Event()
        self.fatal: str | None = None
        self.verify_queue: DelayQueue[str] = DelayQueue()
        self.backoff = Backoff(profile.retries.backoff_seconds,
                               profile.retries.backoff_max_seconds)
        self._next_msg_id = 0
        self.forwarder: Forwarder | None = None
        self.verifier: Verifier | None = None
        self.janitor = Janitor(spool, ledger)
        self.rules = profile.rules()
        self.conflict_check = ConflictCheck(PATIENT_ID not in self.rules.touched_tags,
                                            not self.rules.changes_identity)
        self.skipped: dict[str, dict[str, str]] = {}  # study -> SOP UIDs kept as held, why
        self.threads: list[threading.Thread] = []
        for work in works:
            if not work.final and work.stage is Stage.QUEUED:
                self.queues.push(work)

    # --- the dispatch loop ----------------------------------------------------------------

    def dispatch_until_done(self, tick: Callable[[], None] = lambda: None) -> None:
        """Start retrieves as throttles allow until every study is settled (or stop)."""
        with self.lock:
            while not self._finished():
                wait = self._dispatch_once(time.monotonic())
                self.wake.wait(timeout=min(wait, _IDLE_WAKE))
                tick()
            if self.dead.update(False, time.monotonic()) == "end":
                self.ledger.record_event(EventKind.DEAD_TIME_END,
                                         detail={"seconds": round(self.dead.last_span, 3)})

    def _finished(self) -> bool:
        if self.stopping.is_set() or self.fatal:
            return True
        return self.tally.open == 0

    def _dispatch_once(self, now: float) -> float:
        """Start every retrieve that may start now; seconds until the next may."""
        self._watch_stalls(now)
        self._probe_down_devices(now)
        self.redates.refill(now, self.by_study)
        next_release = self.queues.release(now)
        wait = (next_release - now) if next_release is not None else _IDLE_WAKE
        if not self.spool.is_full:
            wall = self.wall_clock(self.zone)
            usable = {d for d, s in self.devices.items() if s.usable()}
            for device_id in sorted(usable):
                wait = min(wait, self._fill_device(self.devices[device_id], usable, now, wall))
        self._note_dead_time(now)
        return max(wait, 0.01)

    def _fill_device(self, device: DeviceState, usable: set[str], now: float,
                     wall: datetime) -> float:
        name = throttle_in_force(self.plan.schedule, device.pinned, wall)
        self._note_throttle(device, name)
        throttle = self.throttles.get(name) if name else None
        while True:
            redate = self.redates.peek()
            uid = redate or self.queues.peek(device.id, usable)
            if uid is None:
                return _IDLE_WAKE
            megabytes, instances = self._size_of(uid)
            gate = next_start(throttle, device.in_flight, device.last_start, now,
                              self._formula_values(megabytes, instances, device, now))
            if gate.wait != 0.0:
                return gate.wait if gate.wait is not None else _IDLE_WAKE
            if redate is not None:
                self.redates.pop()
                self._start_retrieve(redate, device, RetrievePurpose.REDATE, now)
                continue
            expected = self._expected_bytes(uid)
            if not self._spool_has_room(expected):
                return _IDLE_WAKE  # back-pressure: the spool would overflow; a store frees it
            self.queues.pop(uid)
            self._start_retrieve(uid, device, RetrievePurpose.MIGRATE, now, expected)

    def _expected_bytes(self, uid: str) -> int:
        """The spool bytes a retrieve of `uid` will bring: its instance count times the mean
        instance received so far, else the plan's estimate."""
        work = self.works[uid]
        left = max(0, (work.expected or 0) - len(work.received))
        if self.counters.received and work.expected:
            return left * self.counters.received_bytes // self.counters.received
        return int(work.megabytes * 1e6)

    def _spool_has_room(self, expected: int) -> bool:
        """Whether the spool holds what it holds now, what the retrieves in flight will
        bring, and `expected` more. With nothing in flight, a spool that is empty or holds
        only what was set aside has room: a study larger than the whole spool must still
        start (its stores are then refused, and cost no attempt: see on_rejected)."""
        used = self.spool.used_bytes
        reserved = sum(r.reserved for r in self.retrieves.values()
                       if r.purpose is RetrievePurpose.MIGRATE)
        counters = self.counters
        draining = counters.received > counters.forwarded + counters.set_aside \
            or self.janitor.pending
        if reserved == 0 and (used == 0 or not draining):
            return True  # nothing in flight, nothing to forward: what is left is set aside
        return used + reserved + expected <= self.spool.max_bytes

    def _size_of(self, uid: str) -> tuple[float, int]:
        work = self.works.get(uid)
        if work is not None:
            return work.megabytes, work.expected or 0
        study = self.plan_studies.get(uid)
        return (study.estimated_mb, study.instances or 0) if study else (0.0, 0)

    def _formula_values(self, megabytes: float, instances: int, device: DeviceState,
                        now: float) -> dict[str, float]:
        return {"study_mb": megabytes, "study_instances": float(instances),
                "spool_gb": self.spool.used_bytes / 1e9,
                "device_mb_per_s": device.meter.mb_per_s(now)}

    def _note_throttle(self, device: DeviceState, name: str | None) -> None:
        if name != device.throttle:
            self.ledger.record_event(EventKind.THROTTLE_CHANGE, device=device.id,
                                     detail={"from": device.throttle, "to": name or "paused"})
            device.throttle = name

    # --- dead time, stalls and device health ----------------------------------------------

    def _note_dead_time(self, now: float) -> None:
        """Dead time: studies wait for a retrieve and none is in flight on any device."""
        dead = bool(len(self.queues)) and not self.retrieves
        change = self.dead.update(dead, now)
        if change == "start":
            self.ledger.record_event(EventKind.DEAD_TIME_START)
        elif change == "end":
            self.ledger.record_event(EventKind.DEAD_TIME_END,
                                     detail={"seconds": round(self.dead.last_span, 3)})

    def _watch_stalls(self, now: float) -> None:
        limit = self.profile.source.health.stall_timeout
        for retrieve in list(self.retrieves.values()):
            idle = now - retrieve.last_progress
            if idle > limit and not retrieve.handle.aborted:
                self.ledger.record_event(EventKind.STALL, device=retrieve.device,
                                         study_uid=retrieve.study_uid,
                                         detail={"idle_seconds": round(idle, 1)})
                retrieve.handle.abort()

    def _probe_down_devices(self, now: float) -> None:
        for device in self.devices.values():
            if device.probe_due(now):
                device.probing = True
                threading.Thread(target=self._probe, args=(device,), daemon=True,
                                 name=f"probe-{device.id}").start()

    def _probe(self, device: DeviceState) -> None:
        echo = c_echo(device.peer, self.profile.source.calling_ae_title, self.settings)
        with self.lock:
            if device.probed(echo.ok, time.monotonic()):
                self.ledger.record_event(EventKind.DEVICE_UP, device=device.id)
                self.alerter.send("device_up", device.id, {"probe": echo.detail})
            self.wake.notify_all()

    # --- retrieves ------------------------------------------------------------------------

    def _start_retrieve(self, uid: str, device: DeviceState, purpose: RetrievePurpose,
                        now: float, reserved: int = 0) -> None:
        msg_id = self._allocate_msg_id()
        retrieve_id = self.ledger.record_retrieve_started(study_uid=uid, device=device.id,
                                                          purpose=purpose)
        retrieve = Retrieve(retrieve_id, uid, device.id, purpose, msg_id, now, now,
                            reserved=reserved)
        self.retrieves[msg_id] = retrieve
        self.by_study[uid] = retrieve
        device.started(now)
        if purpose is RetrievePurpose.MIGRATE:
            work = self.works[uid]
            work.stage = Stage.RETRIEVING
            work.retrieves += 1
            self.ledger.record_study_status(uid, StudyStatus.ACTIVE)
        thread = threading.Thread(target=self._retrieve, args=(retrieve, device.peer),
                                  name=f"retrieve-{msg_id}", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()]
        self.threads.append(thread)
        thread.start()

    def abandon_retrieves(self, timeout: float) -> None:
        """Abort what is still in flight (re-dates, or all at Ctrl-C) and wait for the ends."""
        with self.lock:
            for retrieve in self.retrieves.values():
                retrieve.handle.abort()
            threads = list(self.threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _allocate_msg_id(self) -> int:
        for _ in range(0xFFFF):
            self._next_msg_id = self._next_msg_id % 0xFFFF + 1
            if self._next_msg_id not in self.retrieves:
                return self._next_msg_id
        raise RuntimeError("no free C-MOVE message id")

    def _retrieve(self, retrieve: Retrieve, peer: Peer) -> None:
        from runner.dicom.move import c_move

        if retrieve.purpose is RetrievePurpose.MIGRATE and \
                self._held_back(retrieve, self._conflicts(retrieve.study_uid, peer)):
            return
        with self.lock:
            work = self.works.get(retrieve.study_uid)
            only = work.repair if work is not None and \
                retrieve.purpose is RetrievePurpose.MIGRATE else ()
        outcome = c_move(peer, self.profile.source.calling_ae_title, self.settings,
                         self.profile.listener.ae_title, retrieve.study_uid,
                         msg_id=retrieve.msg_id, on_pending=retrieve.progressed,
                         handle=retrieve.handle, sop_instances=list(only) or None)
        if only and not outcome.ok:
            with self.lock:  # the source may not retrieve single instances: the whole study
                if work is not None:
                    work.repair = ()
        with self.lock:
            outcome = replace(outcome, detail=retrieve.explained(outcome))
        self.ledger.record_retrieve_finished(
            retrieve.retrieve_id, final_status=outcome.status, category=str(outcome.category),
            completed=outcome.completed, failed=outcome.failed, warning=outcome.warning,
            remaining=outcome.remaining, failed_uids=outcome.failed_uids,
            detail=outcome.detail)
        with self.lock:
            self._retrieve_finished(retrieve, outcome)
            self.wake.notify_all()

    # --- conflicts at the destination ------------------------------------------------------

    def _conflicts(self, study_uid: str, source: Peer) -> list[Conflict]:
        """What the destination holds of the study that disagrees with the source (asked of
        the source only when the destination holds something of it)."""
        calling = self.profile.source.calling_ae_title
        held = instances_present(destination_peer(self.profile), calling, self.settings,
                                 study_uid, RETURN_KEYS)
        if not held.ok or not held.sop_uids:
            return []  # nothing held (or no answer: the stores and the check will tell)
        ours = instances_present(source, calling, self.settings, study_uid, RETURN_KEYS)
        if not ours.ok:
            return []
        return find_conflicts(self.conflict_check, ours.values, held.values)

    def _held_back(self, retrieve: Retrieve, conflicts: list[Conflict]) -> bool:
        """Record the conflicts and apply the policy; True when nothing is to be retrieved."""
        if not conflicts:
            return False
        policy = self.profile.destination.conflicts
        resolution = {"quarantine": "quarantined: nothing of the study sent",
                      "skip": "skipped: the destination's copy kept",
                      "overwrite": "overwritten: sent anyway"}[policy]
        for conflict in conflicts:
            self.ledger.record_event(EventKind.CONFLICT, study_uid=retrieve.study_uid,
                                     detail={"kind": conflict.kind,
                                             "sop_instance_uid": conflict.sop_instance_uid,
                                             "conflict": conflict.describe(),
                                             "resolution": resolution})
        if policy == "overwrite":
            return False
        if policy == "skip" and all(c.sop_instance_uid for c in conflicts):
            with self.lock:
                self.skipped[retrieve.study_uid] = {
                    c.sop_instance_uid: c.describe() for c in conflicts if c.sop_instance_uid}
            return False
        reason = (f"conflict at the destination ({len(conflicts)}): {conflicts[0].describe()}; "
                  "quarantined, nothing of the study sent (destination.conflicts)")
        self.ledger.record_retrieve_finished(retrieve.retrieve_id, final_status=None,
                                             category="conflict", detail=reason)
        with self.lock:
            self.retrieves.pop(retrieve.msg_id, None)
            if self.by_study.get(retrieve.study_uid) is retrieve:
                del self.by_study[retrieve.study_uid]
            self.devices[retrieve.device].in_flight -= 1
            self._give_up(self.works[retrieve.study_uid], reason)
            self.wake.notify_all()
        return True

    def _retrieve_finished(self, retrieve: Retrieve, outcome: MoveOutcome) -> None:
        self.retrieves.pop(retrieve.msg_id, None)
        if self.by_study.get(retrieve.study_uid) is retrieve:  # a re-date may overlap a move
            del self.by_study[retrieve.study_uid]
        device = self.devices[retrieve.device]
        ours = retrieve.spool_refused > 0  # our full spool failed it: not the device's doing
        if device.finished(replace(outcome, category=StatusCategory.SUCCESS) if ours
                           else outcome, time.monotonic()):
            detail = {"failures": device.failures, "last": outcome.detail}
            self.ledger.record_event(EventKind.DEVICE_DOWN, device=device.id, detail=detail)
            self.alerter.send("device_down", device.id, detail)
        if retrieve.purpose is RetrievePurpose.REDATE:
            self.redates.finished(retrieve.study_uid, outcome.ok)
            return
        work = self.works[retrieve.study_uid]
        if ours and work.spool_refunds < _SPOOL_REFUNDS:
            work.spool_refunds += 1
            work.retrieves -= 1  # the runner's own back-pressure: no attempt spent
        if outcome.category is StatusCategory.MOVE_DESTINATION_UNKNOWN:
            self.fatal = (f"device {device.id} ({device.peer}) does not know the move "
                          f"destination {self.profile.listener.ae_title}: add the runner's "
                          "listener to the source's DICOM nodes (status 0xA801)")
            return
        reported = _reported_total(outcome)
        if reported:
            work.expected = max(work.expected or 0, reported)
        if outcome.ok or outcome.category is StatusCategory.SUB_OPS_FAILED:
            work.stage = Stage.FORWARDING
            self._maybe_verify(work)
            return
        reason = f"retrieve from {device.id}: {outcome.detail}"
        if is_device_trouble(outcome) and work.troubles < _TROUBLE_BUDGET * work.retrieves:
            work.troubles += 1
            work.retrieves -= 1  # the device's fault, not the study's: no attempt used
            work.reason = reason
            work.stage = Stage.QUEUED
            self.queues.push(work, time.monotonic())
            return
        self._retry_or_give_up(work, reason)

    def _retry_or_give_up(self, work: StudyWork, reason: str) -> None:
        work.reason = reason
        if work.retrieves < self.profile.retries.retrieve_attempts:
            work.stage = Stage.QUEUED
            work.not_before = time.monotonic() + self.backoff.after(work.retrieves)
            self.queues.push(work, time.monotonic())
            return
        self._give_up(work, reason)

    def _settle(self, work: StudyWork, stage: Stage) -> None:
        """The study is verified or given up: it leaves the run's open work."""
        if not work.final:
            work.stage = stage
            self.tally.settle(work)

    def _give_up(self, work: StudyWork, reason: str) -> None:
        # failed, as the reconciliation (and so `status` and the report) calls a study given up
        self._settle(work, Stage.FAILED)
        work.reason = reason
        self.ledger.record_study_status(work.uid, StudyStatus.FAILED, reason)

    # --- the listener's callbacks ----------------------------------------------------------

    def decide(self, incoming: IncomingStore) -> Verdict:
        """Whether an incoming instance belongs to a retrieve we asked for."""
        with self.lock:
            retrieve = self._retrieve_for(incoming)
            if retrieve is None:
                self.counters.refused += 1
                return Verdict.REFUSE
            retrieve.progressed()
            if retrieve.purpose is RetrievePurpose.REDATE:
                self.counters.discarded += 1
                return Verdict.DISCARD
            work = self.works[incoming.study_uid]
            sop = incoming.sop_instance_uid
            if sop in self.skipped.get(incoming.study_uid, {}):
                # a conflict resolved by `skip`: the destination's copy stands for it
                work.received[sop] = Copy(incoming.series_uid, incoming.sop_class_uid,
                                          incoming.transfer_syntax, "")
                work.forwarded.add(sop)
            if sop in work.forwarded or sop in work.received:
                self.counters.discarded += 1
                return Verdict.DISCARD
            return Verdict.STORE

    def _retrieve_for(self, incoming: IncomingStore) -> Retrieve | None:
        """The retrieve in flight an incoming store belongs to: by Move Originator Message
        ID, else by study; only from the device it was sent to (its calling AE), and only
        for a move the runner originated (Move Originator AE title, when given: the runner's
        calling AE, or the storing device's own, as pynetdicom-based archives send)."""
        by_id = self.retrieves.get(incoming.move_originator_msg_id or -1)
        retrieve = by_id if by_id is not None and by_id.study_uid == incoming.study_uid \
            else self.by_study.get(incoming.study_uid)
        if retrieve is None:
            return None
        storing = self.storing_aes.get(retrieve.device, frozenset())
        if incoming.calling_ae not in storing:
            return None
        originator = incoming.move_originator_ae
        if originator and originator != self.profile.source.calling_ae_title \
                and originator not in storing:
            return None  # a move someone else asked for (pynetdicom names itself: allowed)
        return retrieve

    def on_stored(self, received: Received) -> None:
        """An instance is safely in the spool: record it and queue it for forwarding."""
        header, entry = received.header, received.entry
        with self.lock:
            retrieve = self._retrieve_for(header)
            work = self.works[header.study_uid]
            work.received[header.sop_instance_uid] = Copy(
                header.series_uid, header.sop_class_uid, header.transfer_syntax, entry.name)
            work.forwarding.add(header.sop_instance_uid)
            self.counters.received += 1
            self.counters.received_bytes += entry.size
            if retrieve is not None:
                retrieve.received += 1
                retrieve.reserved = max(0, retrieve.reserved - entry.size)
                self.devices[retrieve.device].meter.add(time.monotonic(), entry.size / 1e6)
        self.ledger.record_received(
            sop_instance_uid=header.sop_instance_uid, study_uid=header.study_uid,
            series_uid=header.series_uid, sop_class_uid=header.sop_class_uid,
            transfer_syntax=header.transfer_syntax, nbytes=entry.size, spool_name=entry.name,
            retrieve_id=retrieve.retrieve_id if retrieve else None, checksum=entry.checksum)
        assert self.forwarder is not None
        self.forwarder.submit(ForwardItem(header.sop_instance_uid, header.study_uid,
                                          header.sop_class_uid, header.transfer_syntax,
                                          entry.path, entry.name))

    def on_rejected(self, rejection: Rejection) -> None:
        """A store the listener refused: an event in the ledger (no patient data), and a
        note on the retrieves it may have failed."""
        self.ledger.record_event(EventKind.STORE_REFUSED, detail={
            "calling_ae": rejection.calling_ae, "status": rejection.status,
            "reason": rejection.reason})
        self._note_listener(rejection.calling_ae,
                            f"answered a C-STORE 0x{rejection.status:04X} ({rejection.reason})",
                            spool_full=rejection.status == OUT_OF_RESOURCES)

    def on_turned_away(self, turned: TurnedAway) -> None:
        """An association or presentation context the listener refused: an event, and a
        note on the retrieves it may have failed."""
        self.ledger.record_event(EventKind.LISTENER_REFUSED, detail={
            "calling_ae": turned.calling_ae, "reason": turned.reason})
        self._note_listener(turned.calling_ae, turned.reason)

    def _note_listener(self, calling_ae: str, text: str, spool_full: bool = False) -> None:
        """Note `text` on the retrieves in flight on devices whose AE title is `calling_ae`
        (on every retrieve in flight when none is: a source may store under another title);
        `spool_full`: the runner's own spool refused it, so the retrieve is not the study's
        or the device's failure."""
        with self.lock:
            retrieves = list(self.retrieves.values())
            mine = [r for r in retrieves
                    if calling_ae in self.storing_aes.get(r.device, ())] or retrieves
            for retrieve in mine:
                retrieve.note(f"{text} (from {calling_ae})")
                retrieve.spool_refused += spool_full

    # --- forwarding results -----------------------------------------------------------------

    def on_forwarded(self, result: ForwardResult) -> None:
        """Record a C-STORE attempt; settle the instance when it is final."""
        item, done = result.item, result.transcoded
        self.ledger.record_forwarded(sop_instance_uid=item.sop_instance_uid,
                                     study_uid=item.study_uid, ok=result.ok,
                                     status=result.status, reason=result.reason or None,
                                     dest_sop_instance_uid=result.dest_sop_instance_uid,
                                     transcode=(done.source_syntax, done.sent_syntax,
                                                done.reason) if done else None,
                                     rules_fired=result.fired)
        if not result.final:
            return
        expected = self._expected_values(result) if result.ok else None
        if not result.ok:
            self.ledger.record_quarantined(sop_instance_uid=item.sop_instance_uid,
                                           study_uid=item.study_uid, reason=result.reason)
        with self.lock:
            work = self.works[item.study_uid]
            work.forwarding.discard(item.sop_instance_uid)
            if result.ok:
                work.forwarded.add(item.sop_instance_uid)
                if expected is not None:
                    work.values[item.sop_instance_uid] = expected
                if result.dest_sop_instance_uid:
                    work.dest_uids[item.sop_instance_uid] = result.dest_sop_instance_uid
                self.counters.forwarded += 1
            else:
                work.set_aside[item.sop_instance_uid] = result.reason
                self.counters.set_aside += 1
            if self._maybe_verify(work) or not result.ok:
                self.wake.notify_all()  # only a change of the study's stage concerns dispatch
        if result.ok:
            self.janitor.discard_later(item.spool_name)

    def _expected_values(self, result: ForwardResult) -> dict[int, str] | None:
        """The morphed values to check at the destination (verify: instances, with rules):
        from the forwarder, which made them, else from the spooled file."""
        assert self.verifier is not None
        if not self.verifier.value_tags:
            return None
        if result.values is not None:
            return dict(result.values)
        return expected_values(result.item.path, self.rules, self.verifier.value_tags)

    def _maybe_verify(self, work: StudyWork) -> bool:
        """Queue the study for its check once it is retrieved and every instance settled."""
        if work.stage is Stage.FORWARDING and work.settled():
            work.stage = Stage.VERIFYING
            self.verify_queue.put(work.uid)
            return True
        return False

    # --- verification -----------------------------------------------------------------------

    def verify_loop(self) -> None:
        """The verifier thread: check studies at the destination as they settle."""
        while (uid := self.verify_queue.get()) is not None:
            try:
                self._verify(uid)
            except Exception:
                if not self.stopping.is_set():  # a check cut short by the end of the run
                    log.exception("verification failed unexpectedly")
            finally:
                self.verify_queue.done()
                with self.lock:
                    self.wake.notify_all()

    def _verify(self, uid: str) -> None:
        assert self.verifier is not None
        with self.lock:
            work = self.works[uid]
            expected = {sop: (work.dest_uids.get(sop, sop), work.received[sop].sop_class_uid)
                        for sop in work.forwarded if sop in work.received}
            work.verifications += 1
        check = self.verifier.check(uid, expected)
        with self.lock:
            self._judge(work, check)

    def _judge(self, work: StudyWork, check: Check) -> None:
        method = METHODS[self.profile.destination.verify]
        if not check.answered:
            self._verify_again_or_give_up(work, verification_error(
                check.detail, self.profile.source.calling_ae_title))
            return
        source_count = max(work.expected or 0, len(work.received))
        values = compare_values(work.values, check.values, work.dest_uids)
        confirmed = check.confirmed - values.different
        judged = verdict(self.profile.destination.verify, work.received, confirmed,
                         check.found, source_count)
        # by count the destination cannot say which instances: any set aside means short
        ok = judged.ok and not (method is VerificationMethod.COUNT and work.set_aside)
        missing_uids = list(judged.missing)
        self.ledger.record_verification(
            study_uid=work.uid, method=method, expected=source_count, found=check.found,
            ok=ok, missing_uids=missing_uids, confirmed_uids=sorted(confirmed),
            detail="; ".join(filter(None, (check.detail, values.detail()))))
        if ok:
            self._settle(work, Stage.VERIFIED)
            self.ledger.record_study_status(work.uid, StudyStatus.DONE)
            return
        self._repair(work, missing_uids, source_count, values.different)

    def _verify_again_or_give_up(self, work: StudyWork, reason: str) -> None:
        if work.verifications < self.profile.retries.verify_attempts:
            self.verify_queue.put(work.uid, self.backoff.after(work.verifications))
            return
        self._give_up(work, reason)

    def _repair(self, work: StudyWork, missing: list[str], source_count: int,
                different: frozenset[str]) -> None:
        """Missing at the destination: retrieve the study again (duplicates are discarded)."""
        if work.set_aside and not (set(missing) - set(work.set_aside)) \
                and len(work.received) >= source_count:
            self._give_up(work, f"{len(work.set_aside)} instances refused by the destination: "
                                f"{next(iter(work.set_aside.values()))}")
            return
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
        self._retry_or_give_up(work, reason)



def _reported_total(outcome: MoveOutcome) -> int:
    return sum(v or 0 for v in (outcome.completed, outcome.failed, outcome.warning))


class Janitor:
    """Removes forwarded spool files once the ledger has committed their forward."""

    def __init__(self, spool: Spool, ledger: Ledger) -> None:
        self.spool = spool
        self.ledger = ledger
        self.names: list[str] = []
        self.removing = 0  # files taken by a sweep under way, not removed yet
        self.lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Whether forwarded files still wait to be removed from the spool."""
        with self.lock:
            return bool(self.names or self.removing)

    def discard_later(self, name: str) -> None:
        """Queue a spool file for removal after the next ledger flush."""
        with self.lock:
            self.names.append(name)

    def sweep(self) -> int:
        """Flush the ledger, then remove the files queued before the flush."""
        with self.lock:
            names, self.names = self.names, []
            self.removing = len(names)
        if not names:
            return 0
        try:
            self.ledger.flush()
            for name in names:
                self.spool.remove(name)
        finally:
            with self.lock:
                self.removing = 0
        return len(names)


def _redates(plan: Plan, ledger: Ledger) -> Redates:
    """The re-date rounds, each study due `every_hours` after its last re-date in the ledger."""
    now = datetime.now(UTC)
    ages = {uid: (now - ended).total_seconds()
            for uid, ended in last_redates(ledger).items()}
    return Redates(plan.redate.study_uids, plan.redate.every_hours * 3600.0, ages,
                   time.monotonic())
