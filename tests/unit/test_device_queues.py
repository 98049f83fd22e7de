"""The devices' queues: own studies first, stolen when idle; with devices that front one
archive, the archive's phases hold for all of them."""

from __future__ import annotations

from datetime import date

from runner.execute.work import DeviceQueues, StudyWork
from runner.inventory.model import Study
from runner.profile.tiers import Location


def _work(uid: str, phase: int, order: int, device: str, not_before: float = 0.0) -> StudyWork:
    tier = Location.LOCAL if phase == 0 else Location.NEARLINE
    work = StudyWork(Study(uid, date(2020, 1, 1), "CT", 1, 1.0, tier), phase, order, device, 1)
    work.not_before = not_before
    return work


def _queues(shared: bool) -> DeviceQueues:
    queues = DeviceQueues(["a", "b"], shared)
    for work in (_work("a-local", 0, 0, "a"), _work("a-near", 1, 1, "a"),
                 _work("b-local", 0, 2, "b"), _work("b-near", 1, 3, "b")):
        queues.push(work)
    return queues


def test_each_device_works_through_its_own_phases_by_default() -> None:
    queues = _queues(shared=False)
    queues.pop(queues.peek("a", {"a"}) or "")
    assert queues.peek("a", {"a"}) == "a-near"  # b (down) still holds a local study


def test_devices_of_one_archive_finish_the_local_phase_before_any_recall() -> None:
    queues = _queues(shared=True)
    assert queues.peek("a", {"a"}) == "a-local"
    queues.pop("a-local")
    assert queues.peek("a", {"a"}) == "b-local"  # b is down: a takes its local study first
    queues.pop("b-local")
    assert queues.peek("a", {"a"}) == "a-near"


def test_a_local_study_waiting_out_its_backoff_holds_the_nearline_phase() -> None:
    queues = DeviceQueues(["a", "b"], shared=True)
    queues.push(_work("b-local", 0, 0, "b", not_before=10.0), now=0.0)
    queues.push(_work("a-near", 1, 1, "a"), now=0.0)
    assert queues.peek("a", {"a", "b"}) is None  # no recall while a local study waits
    assert queues.release(10.0) is None
    assert queues.peek("a", {"a", "b"}) == "b-local"
