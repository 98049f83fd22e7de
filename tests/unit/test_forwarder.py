"""The forwarder's retry rules, with a scripted sender instead of a destination."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from runner.execute.delayqueue import Backoff
from runner.execute.sending.forwarder import Forwarder
from runner.execute.sending.seam import Attempt, ForwardItem, ForwardResult, Sender

ITEM = ForwardItem("1.2.3.4", "1.2.3", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1",
                   Path("/nonexistent.dcm"), "0" * 32 + ".dcm")


class One:
    """The `Senders` of a forwarder with one thread: always `sender`."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    def new(self) -> Sender:
        return self.sender

    def close(self) -> None:
        pass


class Scripted:
    """Answers each send with the next scripted Attempt."""

    def __init__(self, answers: Iterator[Attempt]) -> None:
        self.answers = answers
        self.attempts: list[int] = []

    def prepare(self) -> None:
        pass

    def send(self, item: ForwardItem) -> Attempt:
        self.attempts.append(item.attempt)
        return next(self.answers)

    def close(self) -> None:
        pass


def run_one(answers: list[Attempt], attempts: int = 3) -> tuple[list[ForwardResult], Scripted]:
    sender = Scripted(iter(answers))
    results: list[ForwardResult] = []
    settled = threading.Event()

    def collect(result: ForwardResult) -> None:
        results.append(result)
        if result.final:
            settled.set()

    pool = Forwarder(One(sender), 1, attempts, Backoff(0.001, 0.002), collect)
    pool.start().submit(ITEM)
    assert settled.wait(timeout=30)
    pool.close()
    return results, sender


def test_a_failed_store_is_tried_again_until_it_succeeds() -> None:
    failed = Attempt(False, 0xA700, "out of resources")
    results, sender = run_one([failed, failed, Attempt(True, 0, "stored", "9.9")])
    assert [(r.ok, r.final) for r in results] == [(False, False), (False, False), (True, True)]
    assert sender.attempts == [1, 2, 3]
    assert results[-1].dest_sop_instance_uid == "9.9"


def test_a_store_failing_every_attempt_is_set_aside_with_the_count() -> None:
    failed = Attempt(False, 0xC000, "cannot understand")
    results, _ = run_one([failed] * 2, attempts=2)
    assert results[-1].final and not results[-1].ok
    assert results[-1].reason == "cannot understand (after 2 attempts)"


def test_an_instance_that_cannot_be_sent_is_set_aside_at_once() -> None:
    results, sender = run_one([Attempt(False, None, "morphing failed: x", retry=False)])
    assert [(r.ok, r.final, r.reason) for r in results] == [(False, True, "morphing failed: x")]
    assert sender.attempts == [1]


class PipelinedScript(Scripted):
    """Holds up to two instances; answers them in order; `refuse` makes submit raise."""

    depth = 2

    def __init__(self, answers: Iterator[Attempt], refuse: set[str] | None = None) -> None:
        super().__init__(answers)
        self.held: list[ForwardItem] = []
        self.most_held = 0
        self.refuse = refuse or set()

    def submit(self, item: ForwardItem) -> None:
        if item.sop_instance_uid in self.refuse:
            raise RuntimeError("no worker can start")
        self.held.append(item)
        self.most_held = max(self.most_held, len(self.held))

    def collect(self) -> Attempt:
        return self.send(self.held.pop(0))


def run_pipelined(sender: PipelinedScript, items: list[ForwardItem]) -> list[ForwardResult]:
    results: list[ForwardResult] = []
    settled = threading.Event()

    def collect(result: ForwardResult) -> None:
        results.append(result)
        if sum(r.final for r in results) == len(items):
            settled.set()

    pool = Forwarder(One(sender), 1, 3, Backoff(0.001, 0.002), collect)
    for item in items:
        pool.submit(item)
    pool.start()
    assert settled.wait(timeout=30)
    pool.close()
    return results


def _items(count: int) -> list[ForwardItem]:
    return [ForwardItem(f"1.2.3.{i}", "1.2.3", ITEM.sop_class_uid, ITEM.transfer_syntax,
                        ITEM.path, f"{i:032x}.dcm") for i in range(count)]


def test_a_pipelined_sender_holds_two_instances_and_every_one_settles() -> None:
    items = _items(5)
    sender = PipelinedScript(iter([Attempt(True, 0, "stored")] * 5))

    results = run_pipelined(sender, items)

    assert sender.most_held == 2
    assert sorted(r.item.sop_instance_uid for r in results) == [i.sop_instance_uid
                                                                for i in items]
    assert all(r.ok and r.final for r in results)


def test_an_instance_the_sender_cannot_take_is_set_aside_and_the_others_go_on() -> None:
    items = _items(3)
    sender = PipelinedScript(iter([Attempt(True, 0, "stored")] * 2), refuse={"1.2.3.1"})

    results = run_pipelined(sender, items)

    refused = [r for r in results if r.item.sop_instance_uid == "1.2.3.1"]
    assert [(r.ok, r.final, r.reason) for r in refused] == [
        (False, True, "internal error while forwarding")]
    assert sum(r.ok for r in results) == 2
