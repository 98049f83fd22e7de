"""A slow nearline recall told from a stall: no data moving yet is a recall up to its allowance."""

from __future__ import annotations

from runner.dicom.move import MoveProgress
from runner.execute.inflight import Retrieve
from runner.ledger import RetrievePurpose
from runner.ledger.queries import RetrieveTiming
from runner.tiering.calibrate import recall_allowance


def waiting(allowance: float) -> Retrieve:
    return Retrieve("r", "1.2", "dev", RetrievePurpose.MIGRATE, 1, 0.0, 0.0,
                    recall_allowance=allowance)


def test_a_retrieve_with_no_data_moving_yet_waits_for_its_recall_then_stalls() -> None:
    retrieve = waiting(600.0)
    assert retrieve.stalled(400.0, stall_timeout=300.0) is None
    assert retrieve.stalled(601.0, stall_timeout=300.0) == 601.0
    assert waiting(0.0).stalled(301.0, stall_timeout=300.0) == 301.0


def test_a_first_pending_response_announcing_the_work_is_not_data_moving() -> None:
    retrieve = waiting(600.0)
    retrieve.progressed(MoveProgress(remaining=10, completed=0, failed=0, warning=0))
    assert not retrieve.moving
    retrieve.progressed(MoveProgress(remaining=9, completed=1, failed=0, warning=0))
    assert retrieve.moving
    now = retrieve.last_progress
    assert retrieve.stalled(now + 301.0, stall_timeout=300.0) is not None  # moving: stall


def test_an_instance_arriving_is_data_moving() -> None:
    retrieve = waiting(600.0)
    retrieve.progressed()
    assert retrieve.moving
    assert retrieve.stalled(retrieve.last_progress + 301.0, stall_timeout=300.0) is not None


def test_the_allowance_is_the_recall_timeout_or_twice_the_longest_recall_measured() -> None:
    local = RetrieveTiming("local", 10.0, 5000.0, 1.0)  # a slow local one is no recall
    assert recall_allowance(3600.0, []) == 3600.0
    assert recall_allowance(3600.0, [local]) == 3600.0
    pilot = [local, RetrieveTiming("nearline", 10.0, 2500.0, 1.0),
             RetrieveTiming("offline", 10.0, 900.0, 1.0)]
    assert recall_allowance(3600.0, pilot) == 5000.0
