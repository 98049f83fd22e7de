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


def _drain(queues: DeviceQueues, device: str) -> list[str]:
    taken = []
    while (uid := queues.peek(device, {"a", "b"})) is not None:
        queues.pop(uid)
        taken.append(uid)
    return taken


def test_a_prioritised_study_goes_ahead_of_the_plan_and_is_taken_once() -> None:
    queues = DeviceQueues(["a"])
    works = [_work(f"s{i}", 0, i, "a") for i in range(5)]
    for work in works:
        queues.push(work)
    assert queues.prioritise(works[3])
    assert not queues.prioritise(works[3])  # once
    assert len(queues) == 5
    assert _drain(queues, "a") == ["s3", "s0", "s1", "s2", "s4"]
    assert len(queues) == 0


def test_the_lane_serves_the_earliest_due_first_then_the_first_come() -> None:
    queues = DeviceQueues(["a"])
    works = [_work(f"s{i}", 0, i, "a") for i in range(4)]
    for work in works:
        queues.push(work)
    queues.prioritise(works[1], rank=20)
    queues.prioritise(works[2], rank=10)
    queues.prioritise(works[3], rank=20)
    assert _drain(queues, "a") == ["s2", "s1", "s3", "s0"]


def test_a_device_takes_another_devices_priority_study_before_its_own_plan() -> None:
    queues = _queues(shared=False)
    b_near = _work("b-near", 1, 3, "b")
    queues.prioritise(b_near)
    assert queues.peek("a", {"a", "b"}) == "b-near"


def test_a_prioritised_study_in_backoff_or_in_flight_comes_back_to_the_lane() -> None:
    queues = DeviceQueues(["a"])
    plain, delayed, flying = (_work("plain", 0, 0, "a"), _work("delayed", 0, 1, "a", 5.0),
                              _work("flying", 0, 2, "a"))
    queues.push(plain)
    queues.push(delayed, now=0.0)
    queues.prioritise(delayed, now=0.0)
    queues.prioritise(flying, now=0.0, queued=False)  # a retrieve is under way
    queues.push(flying)  # its retrieve failed: queued again
    queues.release(now=6.0)
    assert _drain(queues, "a") == ["flying", "delayed", "plain"]


def test_a_study_prioritised_when_its_backoff_has_passed_but_not_been_released_comes_once(
        ) -> None:
    queues = DeviceQueues(["a"])
    late = _work("late", 0, 0, "a", not_before=5.0)
    queues.push(late, now=0.0)
    queues.prioritise(late, now=6.0)  # its time has come; `release` has not run yet
    queues.release(now=6.0)
    assert _drain(queues, "a") == ["late"]
    assert len(queues) == 0
