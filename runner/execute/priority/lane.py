"""The priority lane in a run: requests kept, resolved to studies, and queued first.

`submit` (called by the triggers' threads) keeps a request in the ledger, committed, before
it answers (an HL7 ACK AA means "kept"); a request received again is not served twice. The
lane's thread asks the source for the patient's studies (runner.execute.priority.finder),
chooses the priors by the profile's rules (runner.plan.priority) and, under the run's lock,
puts each in the scheduler's lane (runner.execute.work.DeviceQueues): a study queued goes to
the head of its device's queue; one in flight stays so, and comes back to the lane if it is
retried; one verified before, or excluded by the plan, is not moved; one the plan does not
hold (it reached the source after the census) joins the plan and the run. Requests kept
while no run was serving them, and the unverified studies of requests resolved before, are
served when a run starts. A source that does not answer leaves the request open; it is asked
again later, and by the next run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from runner.execute.priority.finder import PatientFinder, PatientStudies, has_wildcards
from runner.execute.priority.inbox import Inbox
from runner.execute.state import RunState
from runner.execute.work import Stage, StudyWork
from runner.inventory.model import Study
from runner.ledger import (
    CensusStudy,
    CensusTaken,
    EventRecorded,
    Ledger,
    PriorAction,
    PriorityRequested,
    PriorityResolved,
    StudiesPlanned,
    StudyPlanned,
)
from runner.ledger.priority_queries import known_requests, open_requests, unfinished_priors
from runner.morph.accession import masked
from runner.plan.priority import (
    Candidate,
    PriorityRequest,
    PriorRules,
    Trigger,
    choose,
    source_ids,
)

RETRY_SECONDS = 60.0  # a request the source could not answer is asked again after this
_KEEP_TIMEOUT = 10.0  # seconds to commit a request before its trigger is answered
LOOKUP_FAILED = "priority_lookup_failed"


@dataclass(frozen=True, slots=True)
class Polled:
    """What a poller found: requests, and problems to report (a poll that failed, a bad
    row of the clinic list)."""

    requests: Sequence[PriorityRequest] = ()
    problems: Sequence[str] = ()


# Pollers the lane's thread calls each pass (the worklist, the clinic list).
Poller = Callable[[datetime], Polled]
TRIGGER_PROBLEM = "priority_trigger_problem"


class RequestRefused(ValueError):
    """A request the lane cannot use (its trigger answers with the reason)."""


@dataclass(frozen=True, slots=True)
class _Known:
    """What the ledger says of a study a request chose."""

    status: str | None  # studies.status, None when the plan never held it
    excluded: bool
    phase: int
    order: int
    device: str | None


class PriorityLane:
    """Keeps, resolves and queues priority requests for one run."""

    def __init__(self, state: RunState, ledger: Ledger, finder: PatientFinder,
                 rules: PriorRules, patient_tables: Sequence[Mapping[str, str]],
                 mask: bool = True, pollers: Sequence[Poller] = (),
                 first_phase: Callable[[Study], int] = lambda _study: 0,
                 inbox: Inbox | None = None) -> None:
        self.state = state
        self.ledger = ledger
        self.finder = finder
        self.rules = rules
        self.tables = list(patient_tables)
        self.mask = mask
        self.pollers = list(pollers)
        self.first_phase = first_phase
        self.kept_inbox = inbox  # requests kept on disk while the ledger was not ours
        # requests to resolve; None wakes the lane's thread to stop
        self.inbox: queue.Queue[tuple[str, PriorityRequest] | None] = queue.Queue()
        self.known = known_requests(ledger)
        self._known_lock = threading.Lock()
        self._later: list[tuple[float, str, PriorityRequest]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- receiving -------------------------------------------------------------------------

    def submit(self, request: PriorityRequest) -> bool:
        """Keep a request (committed to the ledger) and queue it; False if it was kept
        before (received again: nothing more to do). RequestRefused if it cannot be used."""
        kept = self._keep([request])
        if kept:
            self.inbox.put((request.request_id, request))
        return bool(kept)

    def _keep(self, requests: Sequence[PriorityRequest]) -> list[PriorityRequest]:
        """Record the requests not kept before, committed; the ones recorded now.
        RequestRefused for a patient ID with wildcards (alone: see `_take_inbox`)."""
        for request in requests:
            if has_wildcards(request.patient_id):
                raise RequestRefused("the patient ID has wildcard characters (* ? \\)")
        with self._known_lock:
            new = [r for r in {r.request_id: r for r in requests}.values()
                   if r.request_id not in self.known]
            for request in new:
                self.ledger.record(kept_fact(request, self.mask))
            if new:
                self.ledger.flush(_KEEP_TIMEOUT)
            self.known.update(r.request_id for r in new)
        return new

    def _take_inbox(self) -> None:
        """The requests kept on disk meanwhile, into the ledger and the queue to resolve."""
        if self.kept_inbox is None:
            return
        taken: list[PriorityRequest] = []

        def keep(requests: list[PriorityRequest]) -> None:
            usable = [r for r in requests if not has_wildcards(r.patient_id)]
            taken.extend(self._keep(usable))

        self.kept_inbox.take(keep)
        for request in taken:
            self.inbox.put((request.request_id, request))

    # --- serving ---------------------------------------------------------------------------

    def start(self) -> None:
        """Serve what earlier runs left (before the first retrieve starts), then serve new
        requests on the lane's thread."""
        self.requeue_unfinished()
        for kept in open_requests(self.ledger):
            self.resolve(PriorityRequest(
                Trigger(kept.trigger), kept.patient_id, kept.received_at, kept.issuer,
                kept.due, kept.modality, kept.body_part, event=kept.event), kept.request_id)
        self._poll()  # the worklist and the clinic list as they stand now, first
        while not self.inbox.empty():
            item = self.inbox.get_nowait()
            if item is not None:
                self.resolve(item[1], item[0])
        self._thread = threading.Thread(target=self._serve, name="priority-lane", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (a resolution under way finishes; what is left stays open)."""
        self._stop.set()
        self.inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def requeue_unfinished(self) -> int:
        """Put the unverified studies of requests resolved before in this run's lane."""
        uids = unfinished_priors(self.ledger)
        with self.state.lock:
            count = sum(1 for uid in uids if self._prioritise(uid, 0) is PriorAction.QUEUED)
            self.state.wake.notify_all()
        return count

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._poll()
            try:
                item = self.inbox.get(timeout=0.5)
            except queue.Empty:
                self._retry_due()
                continue
            if item is not None:
                self.resolve(item[1], item[0])

    def _poll(self) -> None:
        self._take_inbox()
        now = datetime.now(UTC)
        for poller in list(self.pollers):
            polled = poller(now)
            for problem in polled.problems:
                self.ledger.record(EventRecorded(
                    kind=TRIGGER_PROBLEM, detail_json=EventRecorded.encode_detail(
                        {"problem": problem})))
            for request in polled.requests:
                try:
                    self.submit(request)
                except RequestRefused as exc:
                    self.ledger.record(EventRecorded(
                        kind="priority_refused", detail_json=EventRecorded.encode_detail(
                            {"trigger": request.trigger.value, "reason": str(exc)})))

    def _retry_due(self) -> None:
        now = time.monotonic()
        for at, request_id, request in self._later:
            if at <= now:
                self.inbox.put((request_id, request))
        self._later = [entry for entry in self._later if entry[0] > now]

    def resolve(self, request: PriorityRequest,
                request_id: str) -> list[tuple[str, PriorAction]]:
        """Ask the source for the patient's studies, queue the chosen ones, record it
        (`request_id`: the request as kept)."""
        found = self.finder.find(source_ids(request.patient_id, self.tables), request.issuer,
                                 self.rules.same_body_part and bool(request.body_part))
        if not found.ok:
            self.ledger.record(EventRecorded(kind=LOOKUP_FAILED, detail_json=(
                EventRecorded.encode_detail({"request_id": request_id,
                                             "detail": found.detail}))))
            self._later.append((time.monotonic() + RETRY_SECONDS, request_id, request))
            return []
        chosen = choose(request, _candidates(found), self.rules)
        by_uid = {s.study_uid: s for s in found.studies}
        known = self._known_studies(chosen)
        rank = due_rank(request.due, request.received_at)
        with self.state.lock:
            actions = [(uid, self._place(by_uid[uid], known.get(uid), rank)) for uid in chosen]
            self.state.wake.notify_all()
        self.ledger.record(PriorityResolved(
            request_id=request_id, found=len(found.studies), outcome="resolved",
            detail=found.detail, studies=tuple(actions)))
        return actions

    def _place(self, study: Study, known: _Known | None, rank: int) -> PriorAction:
        """Under the run's lock: what the lane does with one chosen study."""
        action = self._prioritise(study.study_uid, rank)
        if action is not None:
            return action
        if known is not None and known.status == "done":
            return PriorAction.VERIFIED
        if known is not None and known.excluded:
            return PriorAction.EXCLUDED
        phase = known.phase if known is not None and known.status else self.first_phase(study)
        order = known.order if known is not None and known.status else 0
        device = (known.device if known is not None else None) or study.device or ""
        if device not in self.state.queues.heaps:
            device = next(iter(self.state.queues.heaps))
        work = StudyWork(study, phase, order, device, expected=study.instances)
        if known is None or not known.status:
            self._record_added(work)  # queued before the scheduler can record its retrieve
        self.state.add(work, rank)
        return PriorAction.ADDED

    def _prioritise(self, uid: str, rank: int) -> PriorAction | None:
        """Under the run's lock: a study of the run put in the lane (None: not the run's)."""
        work = self.state.works.get(uid)
        if work is None:
            return None
        if work.stage is Stage.VERIFIED:
            return PriorAction.VERIFIED
        if work.final:
            return PriorAction.GIVEN_UP
        queued = work.stage is Stage.QUEUED
        self.state.queues.prioritise(work, time.monotonic(), queued, rank)
        return PriorAction.QUEUED if queued else PriorAction.UNDER_WAY

    def _known_studies(self, uids: list[str]) -> dict[str, _Known]:
        if not uids:
            return {}
        rows = self.ledger.query(
            "SELECT u.study_uid, s.status, coalesce(c.disposition = 'excluded', false),"
            " coalesce(s.phase_index, 0), coalesce(s.order_index, 0), s.device"
            " FROM (SELECT unnest(?::VARCHAR[]) AS study_uid) u"
            " LEFT JOIN studies s USING (study_uid)"
            " LEFT JOIN census_studies c USING (study_uid)"
            " WHERE s.study_uid IS NOT NULL OR c.study_uid IS NOT NULL", [uids])
        return {str(uid): _Known(status, bool(excluded), int(phase), int(order), device)
                for uid, status, excluded, phase, order, device in rows}

    def _record_added(self, work: StudyWork) -> None:
        """A study the census never saw joins it (a partial census: nothing else is marked
        gone) and the plan."""
        s = work.study
        self.ledger.record(CensusTaken(
            run_id=self.ledger.run_id, command="priority", method="priority lane",
            origin="patient-level C-FIND for a priority request", of_source=True, queries=1,
            complete=False, studies=(CensusStudy(
                study_uid=s.study_uid, study_date=s.study_date, raw_date=s.raw_date,
                modality=s.modality, tier=s.location, device=work.device,
                instances=s.instances, disposition="planned"),)))
        self.ledger.record(StudiesPlanned(studies=(StudyPlanned(
            study_uid=s.study_uid, study_date=s.study_date, modality=s.modality,
            tier=s.location, device=work.device, planned_instances=s.instances,
            planned_mb=s.estimated_mb, phase_index=work.phase, order_index=work.order),)))


def kept_fact(request: PriorityRequest, mask: bool) -> PriorityRequested:
    """The ledger's fact for a request received (its patient ID masked for the reports
    unless `mask` is off; kept in clear only until the request is resolved)."""
    return PriorityRequested(
        request_id=request.request_id, at=request.received_at, trigger=request.trigger.value,
        event=request.event,
        patient_masked=masked(request.patient_id) if mask else request.patient_id,
        patient_id=request.patient_id, issuer=request.issuer, due=request.due,
        modality=request.modality, body_part=request.body_part)


def _candidates(found: PatientStudies) -> list[Candidate]:
    return [Candidate(s.study_uid, s.study_date,
                      found.modalities.get(s.study_uid, frozenset({s.modality})),
                      found.body_parts.get(s.study_uid, frozenset()))
            for s in found.studies]


def due_rank(due: date | None, received_at: datetime) -> int:
    """A request's place in the lane: its due date (else the day received)."""
    return (due or received_at.date()).toordinal()
