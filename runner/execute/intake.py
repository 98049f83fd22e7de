"""Intake: the runner's listener and its decisions. A store is accepted only for a retrieve
in flight, from the device it was sent to; a re-date's and a duplicate's are discarded; an
instance safely in the spool is recorded, then handed to sending. What the listener refuses
is an event, and a note on the retrieves it may have failed. An instance may be held in the
memory spool instead of the spool (cut-through, runner.dicom.arena): its receipt then names
no file, and a crash makes the next run retrieve it again.

Owns the listener's threads: `start`, `stop`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from runner.dicom.arena import Arena
from runner.dicom.commitment_report import CommitmentReport
from runner.dicom.listener import (
    IncomingStore,
    Listener,
    ListenerCallbacks,
    ListenerConfig,
    Received,
    Rejection,
    Verdict,
)
from runner.dicom.spool import Spool
from runner.dicom.status import OUT_OF_RESOURCES
from runner.dicom.ul.acceptor import TurnedAway
from runner.execute.inflight import InFlight
from runner.execute.sending.seam import ForwardItem
from runner.execute.state import RunState
from runner.execute.work import Copy
from runner.ledger import EventKind, Ledger, RetrievePurpose


class Intake:
    """The listener's owner during a run: what it takes in goes to `forward`; the storage
    commitment reports it receives go to `on_commitment` (settlement's)."""

    def __init__(self, state: RunState, inflight: InFlight, ledger: Ledger,
                 config: ListenerConfig, spool: Spool,
                 forward: Callable[[ForwardItem], None],
                 on_commitment: Callable[[CommitmentReport], None],
                 arena: Arena | None = None) -> None:
        self.state = state
        self.inflight = inflight
        self.ledger = ledger
        self.forward = forward
        self.listener = Listener(config, spool, ListenerCallbacks(
            decide=self.decide, on_stored=self.on_stored, on_rejected=self.on_rejected,
            on_commitment=on_commitment, on_turned_away=self.on_turned_away), arena)

    def start(self) -> None:
        """Start listening."""
        self.listener.start()

    def stop(self) -> None:
        """Stop listening (associations under way are ended)."""
        self.listener.stop()

    def decide(self, incoming: IncomingStore) -> Verdict:
        """Whether an incoming instance belongs to a retrieve we asked for."""
        state = self.state
        with state.lock:
            retrieve = self.inflight.owner_of(incoming)
            if retrieve is None:
                state.counters.refused += 1
                return Verdict.REFUSE
            retrieve.progressed()
            if retrieve.purpose is RetrievePurpose.REDATE:
                state.counters.discarded += 1
                return Verdict.DISCARD
            work = state.works[incoming.study_uid]
            sop = incoming.sop_instance_uid
            if sop in self.inflight.skipped.get(incoming.study_uid, {}):
                # a conflict resolved by `skip`: the destination's copy stands for it
                work.received[sop] = Copy(incoming.series_uid, incoming.sop_class_uid,
                                          incoming.transfer_syntax, "")
                work.forwarded.add(sop)
            if sop in work.forwarded or sop in work.received:
                state.counters.discarded += 1
                return Verdict.DISCARD
            return Verdict.STORE

    def on_stored(self, received: Received) -> None:
        """An instance is in the spool (or held in memory): record it, hand it to sending."""
        header, entry = received.header, received.entry
        state = self.state
        with state.lock:
            retrieve = self.inflight.owner_of(header)
            work = state.works[header.study_uid]
            work.received[header.sop_instance_uid] = Copy(
                header.series_uid, header.sop_class_uid, header.transfer_syntax, entry.name)
            work.forwarding.add(header.sop_instance_uid)
            state.counters.received += 1
            state.counters.received_bytes += entry.size
            if retrieve is not None:
                retrieve.received += 1
                retrieve.received_bytes += entry.size
                retrieve.reserved = max(0, retrieve.reserved - entry.size)
                retrieve.meter.add(time.monotonic(), entry.size / 1e6)
        self.ledger.record_received(
            sop_instance_uid=header.sop_instance_uid, study_uid=header.study_uid,
            series_uid=header.series_uid, sop_class_uid=header.sop_class_uid,
            transfer_syntax=header.transfer_syntax, nbytes=entry.size, spool_name=entry.name,
            retrieve_id=retrieve.retrieve_id if retrieve else None, checksum=entry.checksum)
        self.forward(ForwardItem(header.sop_instance_uid, header.study_uid,
                                 header.sop_class_uid, header.transfer_syntax, entry.path,
                                 entry.name, slot=entry.slot))

    def on_rejected(self, rejection: Rejection) -> None:
        """A store the listener refused: an event in the ledger (no patient data), and a
        note on the retrieves it may have failed."""
        self.ledger.record_event(EventKind.STORE_REFUSED, detail={
            "calling_ae": rejection.calling_ae, "status": rejection.status,
            "reason": rejection.reason})
        self._note(rejection.calling_ae,
                   f"answered a C-STORE 0x{rejection.status:04X} ({rejection.reason})",
                   spool_full=rejection.status == OUT_OF_RESOURCES)

    def on_turned_away(self, turned: TurnedAway) -> None:
        """An association or presentation context the listener refused: an event, and a
        note on the retrieves it may have failed."""
        self.ledger.record_event(EventKind.LISTENER_REFUSED, detail={
            "calling_ae": turned.calling_ae, "reason": turned.reason})
        self._note(turned.calling_ae, turned.reason)

    def _note(self, calling_ae: str, text: str, spool_full: bool = False) -> None:
        with self.state.lock:
            self.inflight.note_listener(calling_ae, text, spool_full)
