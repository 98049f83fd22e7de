"""Re-dating rounds: each study due `every` after its last re-date, known from the ledger."""

from __future__ import annotations

from runner.execute.redate import Redates

HOUR = 3600.0


def drain(redates: Redates) -> list[str]:
    taken = []
    while redates.peek() is not None:
        taken.append(redates.pop())
    return taken


def test_studies_never_re_dated_are_due_at_once() -> None:
    redates = Redates(["1.1", "1.2"], 6 * HOUR, now=100.0)
    assert redates.refill(100.0, set())
    assert drain(redates) == ["1.1", "1.2"]


def test_a_study_re_dated_an_hour_ago_waits_for_the_rest_of_its_period() -> None:
    redates = Redates(["1.1", "1.2"], 6 * HOUR, now=0.0, last_done={"1.1": HOUR})
    assert redates.refill(0.0, set())
    assert drain(redates) == ["1.2"]  # 1.1 was re-dated an hour ago: due in five hours
    assert not redates.refill(4.9 * HOUR, set())
    assert redates.refill(5.0 * HOUR, set())
    assert drain(redates) == ["1.1"]


def test_a_restart_within_every_hours_re_dates_nothing() -> None:
    redates = Redates(["1.1", "1.2"], 6 * HOUR, now=50.0,
                      last_done={"1.1": 10.0, "1.2": 20.0})
    assert not redates.refill(50.0, set())
    assert redates.rounds == 0


def test_a_study_being_retrieved_is_left_for_a_later_round() -> None:
    redates = Redates(["1.1", "1.2"], HOUR, now=0.0)
    assert redates.refill(0.0, {"1.1"})
    assert drain(redates) == ["1.2"]
    assert redates.refill(1.0, set())
    assert drain(redates) == ["1.1"]  # it was never queued, so it is still due


def test_a_round_is_not_refilled_while_it_is_under_way() -> None:
    redates = Redates(["1.1"], 1.0, now=0.0)
    assert redates.refill(0.0, set())
    assert not redates.refill(5.0, set())  # 1.1 is still queued
    assert drain(redates) == ["1.1"]
    assert redates.refill(5.0, set())
