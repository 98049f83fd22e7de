"""A deliberately misbehaving source PACS (pynetdicom Q/R SCP, real DICOM on loopback).

It answers C-ECHO and C-FIND like `runner.sim.qrscp.QRServer` (it is one), but each C-MOVE
asks `script(spec, attempt)` for a `Fault` (attempt counts the C-MOVEs of that study, from
1); None means behave. Faults:

- ABORT: send `after` instances, then abort the association (A-ABORT) mid-retrieve;
- STATUS: send `after` instances, then answer the final `status` (0xA702, 0xB000, 0xC000...)
  with a Failed SOP Instance UID List naming the instances not sent when `failed_list`;
- UNKNOWN_DESTINATION: answer 0xA801 at once, whatever the destination;
- SILENT: say how many sub-operations there are, then send nothing and never answer
  (until aborted, or `seconds` have passed: then it aborts itself);
- ENDLESS_PENDING: send a pending response every `interval` seconds with unchanged counts
  and no sub-operation (until aborted, or `seconds` have passed: then it aborts itself).

Every wait is bounded by `seconds`, so a runner that hangs fails its test instead of
hanging the suite. `attempts` and `sent` count C-MOVEs and instances sent per study.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from pydicom.dataset import Dataset, FileDataset
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.events import Event

from runner.sim.generate import StudySpec, make_study
from runner.sim.qrscp import QRServer, selected_instances


class FaultKind(Enum):
    """How a C-MOVE misbehaves."""

    ABORT = "abort"
    STATUS = "status"
    UNKNOWN_DESTINATION = "unknown_destination"
    SILENT = "silent"
    ENDLESS_PENDING = "endless_pending"


@dataclass(frozen=True, slots=True)
class Fault:
    """One C-MOVE's misbehaviour (see the module docstring)."""

    kind: FaultKind
    after: int = 0  # instances sent before the fault
    status: int = 0xC000  # STATUS: the final status
    failed_list: bool = False  # STATUS: name the instances not sent
    seconds: float = 20.0  # SILENT, ENDLESS_PENDING: the longest it keeps it up
    interval: float = 0.2  # ENDLESS_PENDING: seconds between pending responses


Script = Callable[[StudySpec, int], Fault | None]


def behave(_spec: StudySpec, _attempt: int) -> Fault | None:
    """The default script: no fault at all."""
    return None


def first_attempt(victims: dict[str, Fault]) -> Script:
    """A script: the first C-MOVE of each victim study (by UID) has its fault, later ones
    behave."""
    return lambda spec, attempt: victims.get(str(spec.study_uid)) if attempt == 1 else None


@dataclass
class MisbehavingSource(QRServer):
    """A QRServer whose C-MOVEs follow `script`; `attempts` and `sent` count per study UID."""

    script: Script = behave
    attempts: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    faults_done: list[tuple[str, FaultKind]] = field(default_factory=list)

    def _on_move(self, event: Event) -> Iterator[Any]:
        query = event.identifier
        study_uid, address = self.move_request(event)
        spec = self.by_uid.get(study_uid)
        if address is None or spec is None:
            yield None, None  # 0xA801 (a study we do not hold is not the point here)
            return
        with self._lock:
            self.attempts[study_uid] += 1
            fault = self.script(spec, self.attempts[study_uid])
            if fault is not None:
                self.faults_done.append((study_uid, fault.kind))
        if fault is not None and fault.kind is FaultKind.UNKNOWN_DESTINATION:
            yield None, None
            return
        instances = selected_instances(make_study(spec), query)
        yield address
        yield len(instances)
        yield from self._serve(event, spec, instances, fault)

    def _serve(self, event: Event, spec: StudySpec, instances: list[FileDataset],
               fault: Fault | None) -> Iterator[Any]:
        upto = len(instances) if fault is None else min(fault.after, len(instances))
        for ds in instances[:upto]:
            yield 0xFF00, ds
            with self._lock:
                self.sent[str(spec.study_uid)] += 1
        if fault is None:
            return
        if fault.kind is FaultKind.ABORT:
            event.assoc.abort()
        elif fault.kind is FaultKind.STATUS:
            yield fault.status, _failed_list(instances[upto:]) if fault.failed_list else None
        elif fault.kind is FaultKind.SILENT:
            _hold(event, fault.seconds, lambda: None)
        elif fault.kind is FaultKind.ENDLESS_PENDING:
            pending = _pending_sender(event, len(instances) - upto, upto)
            _hold(event, fault.seconds, pending, fault.interval)


def _hold(event: Event, seconds: float, tick: Callable[[], None], interval: float = 0.05) -> None:
    """Call `tick` every `interval` until the peer aborts or `seconds` pass; then abort."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and event.assoc.is_established:
        tick()
        time.sleep(interval)
    if event.assoc.is_established:
        event.assoc.abort()


def _pending_sender(event: Event, remaining: int, completed: int) -> Callable[[], None]:
    """A function that sends one pending C-MOVE response with the same counts each time."""
    request = cast(C_MOVE, event.request)
    context_id = event.context.context_id

    def send() -> None:
        rsp = C_MOVE()
        rsp.MessageIDBeingRespondedTo = request.MessageID
        rsp.AffectedSOPClassUID = request.AffectedSOPClassUID
        rsp.Status = 0xFF00
        rsp.NumberOfRemainingSuboperations = remaining
        rsp.NumberOfCompletedSuboperations = completed
        rsp.NumberOfFailedSuboperations = 0
        rsp.NumberOfWarningSuboperations = 0
        if event.assoc.is_established:
            event.assoc.dimse.send_msg(rsp, context_id)

    return send


def _failed_list(unsent: list[FileDataset]) -> Dataset:
    identifier = Dataset()
    identifier.FailedSOPInstanceUIDList = [str(ds.SOPInstanceUID) for ds in unsent]
    return identifier
