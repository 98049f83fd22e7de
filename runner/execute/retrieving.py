"""The retrieves the scheduler starts: one thread per C-MOVE in flight. Before a migration
retrieve, the destination is asked what it already holds of the study (conflicts, with the
profile's policy); then the C-MOVE to the runner's listener; then what its outcome means for
the device (down after repeated trouble, probed until it answers) and for the study (on to
settlement once every instance is forwarded, queued again, or given up).

Owns the retrieve and probe threads: `abandon` ends the retrieves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from runner.destinations.holdings import Holdings
from runner.dicom.echo import c_echo
from runner.dicom.move import MoveOutcome, c_move
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.status import StatusCategory
from runner.dicom.verify import instances_present
from runner.execute.alerts import Alerter
from runner.execute.conflicts import (
    ANYWHERE_KEYS,
    RETURN_KEYS,
    Conflict,
    ConflictCheck,
    conflicts_elsewhere,
    find_conflicts,
)
from runner.execute.devices import DeviceState, is_device_trouble
from runner.execute.inflight import InFlight, Retrieve
from runner.execute.redate import Redates
from runner.execute.state import RunState
from runner.execute.work import Stage, StudyWork
from runner.ledger import EventKind, Ledger, RetrievePurpose, StudyStatus
from runner.profile.tiers import Location

# Device trouble (lock-up, lost association) does not use up a study's retrieve attempts,
# up to this many times its attempts: a study that breaks every device still ends.
_TROUBLE_BUDGET = 10
# Retrieves a study may lose to the runner's own full spool without spending an attempt
# (bounded: a study larger than the whole spool must still end).
_SPOOL_REFUNDS = 20
_RESOLUTIONS = {"quarantine": "quarantined: nothing of the study sent",
                "skip": "skipped: the destination's copy kept",
                "overwrite": "overwritten: sent anyway"}


@dataclass(frozen=True, slots=True)
class Moves:
    """What every retrieve needs: who asks, where to, and how conflicts are dealt with."""

    calling_ae: str
    listener_ae: str  # the move destination
    settings: DicomSettings
    destination: Holdings  # asked what it holds before a study is retrieved
    conflicts: str  # destination.conflicts: quarantine, skip or overwrite
    conflict_check: ConflictCheck


class Retriever:
    """Starts and finishes retrieves; `offer` hands a retrieved study to settlement."""

    def __init__(self, state: RunState, inflight: InFlight, ledger: Ledger, moves: Moves,
                 devices: dict[str, DeviceState], redates: Redates, alerter: Alerter,
                 offer: Callable[[StudyWork], bool], recall_allowance: float = 0.0) -> None:
        self.state = state
        self.recall_allowance = recall_allowance  # a study not local: its recall's wait
        self.inflight = inflight
        self.ledger = ledger
        self.moves = moves
        self.devices = devices
        self.redates = redates
        self.alerter = alerter
        self.offer = offer
        self.threads: list[threading.Thread] = []

    def start(self, uid: str, device: DeviceState, purpose: RetrievePurpose, now: float,
              reserved: int = 0) -> None:
        """Start a retrieve of `uid` from `device` (under the run's lock)."""
        msg_id = self.inflight.next_msg_id()
        retrieve_id = self.ledger.record_retrieve_started(study_uid=uid, device=device.id,
                                                          purpose=purpose)
        retrieve = Retrieve(retrieve_id, uid, device.id, purpose, msg_id, now, now,
                            reserved=reserved, meter=device.meter,
                            recall_allowance=self._recall_allowance(uid, purpose))
        self.inflight.add(retrieve)
        device.started(now)
        if purpose is RetrievePurpose.MIGRATE:
            work = self.state.works[uid]
            work.stage = Stage.RETRIEVING
            work.retrieves += 1
            self.ledger.record_study_status(uid, StudyStatus.ACTIVE)
        thread = threading.Thread(target=self._run, args=(retrieve, device.peer),
                                  name=f"retrieve-{msg_id}", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()]
        self.threads.append(thread)
        thread.start()

    def _recall_allowance(self, uid: str, purpose: RetrievePurpose) -> float:
        """A migration retrieve of a study not on the local store may wait for its recall
        before data moves; any other is stalled at stall_timeout."""
        work = self.state.works.get(uid)
        if purpose is RetrievePurpose.MIGRATE and work is not None and \
                work.study.location is not Location.LOCAL:
            return self.recall_allowance
        return 0.0

    def probe(self, device: DeviceState) -> None:
        """Ask a device marked down whether it answers again (C-ECHO, in a thread of its own;
        under the run's lock)."""
        device.probing = True
        threading.Thread(target=self._probe, args=(device,), daemon=True,
                         name=f"probe-{device.id}").start()

    def _probe(self, device: DeviceState) -> None:
        echo = c_echo(device.peer, self.moves.calling_ae, self.moves.settings)
        with self.state.lock:
            if device.probed(echo.ok, time.monotonic()):
                self.ledger.record_event(EventKind.DEVICE_UP, device=device.id)
                self.alerter.send("device_up", device.id, {"probe": echo.detail})
            self.state.wake.notify_all()

    def abandon(self, timeout: float) -> None:
        """Abort what is still in flight (re-dates, or all at Ctrl-C) and wait for the ends."""
        with self.state.lock:
            for retrieve in self.inflight:
                retrieve.handle.abort()
            threads = list(self.threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, retrieve: Retrieve, peer: Peer) -> None:
        if retrieve.purpose is RetrievePurpose.MIGRATE and \
                self._held_back(retrieve, self._conflicts(retrieve.study_uid, peer)):
            return
        state, moves = self.state, self.moves
        with state.lock:
            work = state.works.get(retrieve.study_uid)
            only = work.repair if work is not None and \
                retrieve.purpose is RetrievePurpose.MIGRATE else ()
        outcome = c_move(peer, moves.calling_ae, moves.settings, moves.listener_ae,
                         retrieve.study_uid, msg_id=retrieve.msg_id,
                         on_pending=retrieve.progressed, handle=retrieve.handle,
                         sop_instances=list(only) or None)
        with state.lock:
            if only and not outcome.ok and work is not None:
                work.repair = ()  # the source may not retrieve single instances: the whole study
            outcome = replace(outcome, detail=retrieve.explained(outcome))
        self.ledger.record_retrieve_finished(
            retrieve.retrieve_id, final_status=outcome.status, category=str(outcome.category),
            completed=outcome.completed, failed=outcome.failed, warning=outcome.warning,
            remaining=outcome.remaining, failed_uids=outcome.failed_uids,
            detail=outcome.detail)
        with state.lock:
            self._finished(retrieve, outcome)
            state.wake.notify_all()

    def _conflicts(self, study_uid: str, source: Peer) -> list[Conflict]:
        """What the destination holds of the study, or of its instances in other studies,
        that disagrees with the source (the source is asked for its instances first, unless
        the rules give new UIDs and the destination holds nothing of the study)."""
        moves, check = self.moves, self.moves.conflict_check
        held = moves.destination.present(study_uid, RETURN_KEYS)
        if not held.ok:
            return []  # no answer: the stores and the check will tell
        if not held.sop_uids and not check.compare_series:
            return []
        ours = instances_present(source, moves.calling_ae, moves.settings, study_uid,
                                 RETURN_KEYS)
        if not ours.ok:
            return []
        found = find_conflicts(check, ours.values, held.values)
        if check.compare_series and ours.sop_uids - held.sop_uids:
            elsewhere = moves.destination.anywhere(sorted(ours.sop_uids - held.sop_uids),
                                                   ANYWHERE_KEYS)
            found += conflicts_elsewhere(check, study_uid, elsewhere.values)
        return found

    def _held_back(self, retrieve: Retrieve, conflicts: list[Conflict]) -> bool:
        """Record the conflicts and apply the policy; True when nothing is to be retrieved."""
        if not conflicts:
            return False
        policy = self.moves.conflicts
        for conflict in conflicts:
            self.ledger.record_event(EventKind.CONFLICT, study_uid=retrieve.study_uid,
                                     detail={"kind": conflict.kind,
                                             "sop_instance_uid": conflict.sop_instance_uid,
                                             "conflict": conflict.describe(),
                                             "resolution": _RESOLUTIONS[policy]})
        if policy == "overwrite":
            return False
        if policy == "skip" and all(c.skippable for c in conflicts):
            with self.state.lock:
                self.inflight.skipped[retrieve.study_uid] = {
                    c.sop_instance_uid: c.describe() for c in conflicts if c.sop_instance_uid}
            return False
        reason = (f"conflict at the destination ({len(conflicts)}): {conflicts[0].describe()}; "
                  "quarantined, nothing of the study sent (destination.conflicts)")
        self.ledger.record_retrieve_finished(retrieve.retrieve_id, final_status=None,
                                             category="conflict", detail=reason)
        with self.state.lock:
            self.inflight.remove(retrieve)
            self.devices[retrieve.device].in_flight -= 1
            self.state.give_up(self.state.works[retrieve.study_uid], reason)
            self.state.wake.notify_all()
        return True

    def _finished(self, retrieve: Retrieve, outcome: MoveOutcome) -> None:
        self.inflight.remove(retrieve)
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
        work = self.state.works[retrieve.study_uid]
        if ours and work.spool_refunds < _SPOOL_REFUNDS:
            work.spool_refunds += 1
            work.retrieves -= 1  # the runner's own back-pressure: no attempt spent
        if outcome.category is StatusCategory.MOVE_DESTINATION_UNKNOWN:
            self.state.fatal = (f"device {device.id} ({device.peer}) does not know the move "
                                f"destination {self.moves.listener_ae}: add the runner's "
                                "listener to the source's DICOM nodes (status 0xA801)")
            return
        self._study_retrieved(work, device, outcome, retrieve.received_bytes / 1e6)

    def _study_retrieved(self, work: StudyWork, device: DeviceState,
                         outcome: MoveOutcome, received_mb: float) -> None:
        """What a migration retrieve's outcome means for its study (`received_mb`: what it
        brought)."""
        reported = _reported_total(outcome)
        if reported:
            work.expected = max(work.expected or 0, reported)
        if outcome.ok or outcome.category is StatusCategory.SUB_OPS_FAILED:
            if work.study.location is not Location.LOCAL:  # recalled into the local store:
                # its real bytes (a census counts instances, not MB), else as planned
                self.redates.recalled(received_mb or work.megabytes, time.monotonic())
            work.stage = Stage.FORWARDING
            self.offer(work)
            return
        reason = f"retrieve from {device.id}: {outcome.detail}"
        if is_device_trouble(outcome) and work.troubles < _TROUBLE_BUDGET * work.retrieves:
            work.troubles += 1
            work.retrieves -= 1  # the device's fault, not the study's: no attempt used
            work.reason = reason
            self.state.requeue(work)
            return
        self.state.retry_or_give_up(work, reason)


def _reported_total(outcome: MoveOutcome) -> int:
    return sum(v or 0 for v in (outcome.completed, outcome.failed, outcome.warning))
