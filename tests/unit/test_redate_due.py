"""Re-dates are due per study, from the last re-date an earlier run recorded."""

from __future__ import annotations

import pytest

from runner.execute.redate import Redates

HOUR = 3600.0


def _drain(redates: Redates) -> list[str]:
    taken = []
    while redates.peek() is not None:
        taken.append(redates.pop())
    return taken


def test_a_study_re_dated_recently_is_not_due_at_the_start() -> None:
    redates = Redates(["a", "b", "c"], 6 * HOUR, ages={"a": 1 * HOUR, "b": 7 * HOUR}, now=100.0)
    assert redates.refill(100.0, set())
    assert _drain(redates) == ["b", "c"]  # a: re-dated an hour ago, due in five
    assert not redates.refill(100.0 + 4 * HOUR, set())
    assert redates.refill(100.0 + 5 * HOUR, set())
    assert _drain(redates) == ["a"]
    assert redates.refill(100.0 + 6 * HOUR, set())
    assert _drain(redates) == ["b", "c"]


def test_a_restart_within_every_hours_re_dates_nothing() -> None:
    every = {uid: 0.5 * HOUR for uid in ("a", "b")}
    redates = Redates(["a", "b"], 6 * HOUR, ages=every, now=0.0)
    assert not redates.refill(0.0, set())
    assert redates.rounds == 0
    assert redates.next_round == 5.5 * HOUR


def test_without_a_ledger_history_every_study_is_due_at_once() -> None:
    redates = Redates(["a", "b"], HOUR)
    assert redates.refill(0.0, {"b"})  # b is busy: a now, b at the next refill
    assert _drain(redates) == ["a"]
    assert redates.refill(1.0, set())
    assert _drain(redates) == ["b"]


def test_recalls_past_the_volume_make_every_study_due_at_once() -> None:
    redates = Redates(["a", "b"], 24 * HOUR, now=0.0, volume_mb=100.0)
    assert redates.refill(0.0, set())
    assert _drain(redates) == ["a", "b"]
    redates.recalled(60.0, 10.0)
    assert not redates.refill(10.0, set())  # 60 MB recalled: not yet
    redates.recalled(50.0, 20.0)
    assert redates.refill(20.0, set())  # 110 MB: a round now, not in 24 hours
    assert _drain(redates) == ["a", "b"] and redates.early == 1
    redates.recalled(60.0, 30.0)  # counted from the round's start again
    assert not redates.refill(30.0, set())


def test_the_expected_inflow_fills_the_volume_as_time_passes() -> None:
    # new studies and clinicians' reads expected to bring 2 MB a second into the store
    redates = Redates(["a", "b"], 24 * HOUR, now=0.0, volume_mb=100.0, inflow_mb_per_s=2.0)
    assert redates.refill(0.0, set()) and _drain(redates) == ["a", "b"]
    assert redates.next_round == pytest.approx(50.0)  # the scheduler wakes then, not in 24 h
    redates.recalled(40.0, 10.0)  # 40 MB recalled + 20 MB expected by then
    assert redates.next_round == pytest.approx(30.0)
    assert not redates.refill(29.0, set())
    assert redates.refill(30.0, set()) and redates.early == 1
    assert _drain(redates) == ["a", "b"]


def test_without_a_volume_only_every_hours_starts_a_round() -> None:
    redates = Redates(["a"], 24 * HOUR, now=0.0)
    assert redates.refill(0.0, set()) and _drain(redates) == ["a"]
    redates.recalled(1e9, 10.0)
    assert not redates.refill(10.0, set())


def test_each_round_re_dates_the_recent_window_as_it_is_that_day() -> None:
    from datetime import date

    from runner.execute.redate import RecentWindow

    day = [date(2026, 12, 1)]
    census = [(date(2026, 11, 22), "old"), (date(2026, 11, 28), "a"), (date(2026, 11, 30), "b")]
    window = RecentWindow(census, 10, lambda: day[0])
    redates = Redates(window(), HOUR, window=window)
    assert redates.refill(0.0, set())
    assert _drain(redates) == ["old", "a", "b"]
    day[0] = date(2026, 12, 5)  # "old" is no longer recent
    assert redates.refill(HOUR, set())
    assert _drain(redates) == ["a", "b"]
    assert redates.study_uids == ("a", "b")


def test_studies_that_reached_the_source_since_the_census_are_re_dated_too() -> None:
    from datetime import date

    from runner.execute.arrivals import ArrivalsFinder
    from runner.execute.redate import RecentWindow
    from runner.inventory.model import Study
    from runner.profile.tiers import Location

    today = date(2026, 12, 5)
    at_source = [Study("a", date(2026, 11, 30), "CT", 1, 1.0, Location.LOCAL),  # the census's
                 Study("new", today, "CT", 1, 1.0, Location.LOCAL),
                 Study("cloud", today, "CT", 1, 1.0, Location.NEARLINE)]
    asked: list[tuple[date, date]] = []

    def find(since: date, until: date) -> list[Study]:
        asked.append((since, until))
        return at_source

    finder = ArrivalsFinder(find, date(2026, 12, 1), lambda: today, 3600)
    window = RecentWindow([(date(2026, 11, 30), "a")], 10, lambda: today, finder)
    redates = Redates(window(), HOUR, window=window)
    assert redates.refill(0.0, set()) and _drain(redates) == ["a"]
    finder.look()  # the run's look at the source
    assert asked == [(date(2026, 12, 1), today)]
    assert redates.refill(HOUR, set()) and _drain(redates) == ["a", "new"]  # local only


def test_after_a_pilot_the_runner_works_its_volume_out_in_the_sizes_measured() -> None:
    from datetime import date, timedelta

    from runner.execute.wiring import redate_volumes
    from runner.inventory.model import Study
    from runner.profile.tiers import Location
    from runner.tiering.calibrate import StudySizes
    from tests.unit.test_forecast import plan_of, profile

    today = date(2026, 11, 27)
    # ten local CR studies of 4 instances, the last two recent: planned at 2 MB each
    studies = [Study(f"1.{i}", today - timedelta(days=(9 - i) * 12 + 1), "CR", 4, None,
                     Location.LOCAL) for i in range(10)]
    site = profile(tiering={"order": ["local", "nearline"], "local_store_gb": 0.5},
                   redate={"recent_days": 14, "every_hours": 6})
    plan = plan_of(site, studies, today)
    assert len(plan.redate.study_uids) == 2
    assert redate_volumes(site, plan, StudySizes())[1] == plan.redate.volume_mb == 223.0
    # a pilot found 10 MB in each CR instance: the recent studies hold 80 MB, not 4
    assert redate_volumes(site, plan, StudySizes({"CR": 10.0}, 3))[1] == 185.0


def test_a_recall_counts_the_bytes_it_brought_not_the_plans_estimate() -> None:
    import time

    from runner.dicom.move import MoveOutcome
    from runner.dicom.status import StatusCategory
    from runner.execute.retrieving import Retriever
    from runner.execute.work import StudyWork
    from runner.inventory.model import Study
    from runner.profile.tiers import Location

    redates = Redates(["recent"], 24 * HOUR, now=0.0, volume_mb=10.0)
    assert redates.refill(0.0, set()) and _drain(redates) == ["recent"]
    offered: list[StudyWork] = []
    retriever = Retriever(None, None, None, None, {}, redates, None,  # type: ignore[arg-type]
                          offered.append)  # type: ignore[arg-type]
    # a nearline CR study planned at 2 MB (4 instances) brought 40 MB into the local store
    work = StudyWork(Study("1.1", None, "CR", 4, None, Location.NEARLINE), 0, 0, "pacs", 4)
    done = MoveOutcome(StatusCategory.SUCCESS, 0, 4, 0, 0, 0, (), "done", 1.0)
    retriever._study_retrieved(work, None, done, 40.0)  # type: ignore[arg-type]
    assert offered == [work]
    # past the 10 MB volume: a round now (the runner's clock is monotonic)
    assert redates.refill(time.monotonic(), set()) and redates.early == 1
