"""The settlement stage: a study whose every instance is forwarded or set aside is checked at
the destination (the profile's method), judged, recorded, and then verified, checked again
later (no answer), repaired (sent back to the scheduler's queues) or given up.

Owns the verifier thread and its queue: `start`, `close`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import BinaryIO

from runner.execute.delayqueue import Backoff, DelayQueue
from runner.execute.settlement.repair import repair
from runner.execute.settlement.values import compare_values, expected_values
from runner.execute.settlement.verdict import verdict, verification_error
from runner.execute.settlement.verifier import METHODS, Check, Verifier
from runner.execute.state import RunState
from runner.execute.work import Stage, StudyWork
from runner.ledger import Ledger, StudyStatus, VerificationMethod
from runner.morph import RuleSet

log = logging.getLogger(__name__)


class Settlement:
    """Checks settled studies at the destination, one at a time, in its own thread."""

    def __init__(self, state: RunState, ledger: Ledger, verifier: Verifier, rules: RuleSet,
                 verify_attempts: int, backoff: Backoff) -> None:
        self.state = state
        self.ledger = ledger
        self.verifier = verifier
        self.rules = rules
        self.verify_attempts = verify_attempts
        self.backoff = backoff
        self.queue: DelayQueue[str] = DelayQueue()
        self.thread = threading.Thread(target=self._loop, name="verifier", daemon=True)

    def start(self) -> None:
        """Start the verifier thread."""
        self.thread.start()

    def close(self, timeout: float) -> None:
        """Take no more studies; a check under way finishes (up to `timeout` seconds)."""
        self.queue.close()
        self.thread.join(timeout=timeout)

    def offer(self, work: StudyWork) -> bool:
        """Queue the study for its check once it is retrieved and every instance settled
        (under the run's lock); True when it was queued."""
        if work.stage is Stage.FORWARDING and work.settled():
            work.stage = Stage.VERIFYING
            self.queue.put(work.uid)
            return True
        return False

    def resume(self, work: StudyWork) -> None:
        """Check a study an earlier run left waiting for its check."""
        if work.stage is Stage.VERIFYING:
            self.queue.put(work.uid)

    def expected(self, values: Mapping[int, str] | None,
                 source: Callable[[], BinaryIO]) -> dict[int, str] | None:
        """The morphed values to check at the destination (verify: instances, with rules):
        those the sender made, else read from the received instance (`source` opens it)."""
        if not self.verifier.value_tags:
            return None
        if values is not None:
            return dict(values)
        return expected_values(source, self.rules, self.verifier.value_tags)

    def _loop(self) -> None:
        while (uid := self.queue.get()) is not None:
            try:
                self._verify(uid)
            except Exception:
                if not self.state.stopping.is_set():  # a check cut short by the end of the run
                    log.exception("verification failed unexpectedly")
            finally:
                self.queue.done()
                with self.state.lock:
                    self.state.wake.notify_all()

    def _verify(self, uid: str) -> None:
        with self.state.lock:
            work = self.state.works[uid]
            expected = {sop: (work.dest_uids.get(sop, sop), work.received[sop].sop_class_uid)
                        for sop in work.forwarded if sop in work.received}
            work.verifications += 1
        check = self.verifier.check(uid, expected)
        with self.state.lock:
            self._judge(work, check)

    def _judge(self, work: StudyWork, check: Check) -> None:
        if not check.answered:
            self._verify_again_or_give_up(work, verification_error(
                check.detail, self.verifier.calling_ae))
            return
        method = METHODS[self.verifier.method]
        source_count = max(work.expected or 0, len(work.received))
        values = compare_values(work.values, check.values, work.dest_uids)
        confirmed = check.confirmed - values.different
        judged = verdict(self.verifier.method, work.received, confirmed, check.found,
                         source_count)
        # by count the destination cannot say which instances: any set aside means short
        ok = judged.ok and not (method is VerificationMethod.COUNT and work.set_aside)
        missing = list(judged.missing)
        self.ledger.record_verification(
            study_uid=work.uid, method=method, expected=source_count, found=check.found,
            ok=ok, missing_uids=missing, confirmed_uids=sorted(confirmed),
            detail="; ".join(filter(None, (check.detail, values.detail()))))
        if ok:
            self.state.settle(work, Stage.VERIFIED)
            self.ledger.record_study_status(work.uid, StudyStatus.DONE)
            return
        fixed = repair(work, missing, source_count, values.different)
        if fixed.give_up:
            self.state.give_up(work, fixed.reason)
        else:
            self.state.retry_or_give_up(work, fixed.reason)

    def _verify_again_or_give_up(self, work: StudyWork, reason: str) -> None:
        if work.verifications < self.verify_attempts:
            self.queue.put(work.uid, self.backoff.after(work.verifications))
            return
        self.state.give_up(work, reason)
