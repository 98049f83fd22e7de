"""Date windows and their splitting, driven by fake query functions (no network)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.inventory.cfind import Window, WindowAnswer, date_windows, study_query, sweep_windows

D = date(2020, 1, 1)


def archive_query(
    dates: list[date], cap: int | None = None, failing: Callable[[Window], bool] = lambda w: False
) -> tuple[Callable[[Window], WindowAnswer[date]], list[Window]]:
    """A fake PACS holding one study per entry of `dates`: it answers at most `cap` of them
    (like a PACS with a result limit) and fails for windows `failing` selects."""
    asked: list[Window] = []

    def query(window: Window) -> WindowAnswer[date]:
        asked.append(window)
        matches = tuple(d for d in dates if window.first <= d <= window.last)
        if failing(window):
            return WindowAnswer(matches[:1], ok=False, detail="0xC001 unable to process")
        if cap is not None and len(matches) > cap:
            return WindowAnswer(matches[:cap], ok=False, detail="cancelled at the limit")
        return WindowAnswer(matches, ok=True)

    return query, asked


def test_windows_cover_the_range_without_gaps_or_overlap() -> None:
    windows = date_windows(D, date(2020, 3, 10), 30)
    assert windows[0].first == D and windows[-1].last == date(2020, 3, 10)
    for before, after in pairwise(windows):
        assert after.first == before.last + timedelta(days=1)
    assert [w.days for w in windows] == [30, 30, 10]


def test_windows_refuse_an_empty_range_or_zero_days() -> None:
    with pytest.raises(ValueError):
        date_windows(D, D - timedelta(days=1), 7)
    with pytest.raises(ValueError):
        date_windows(D, D, 0)


def test_halves_cover_the_window_exactly() -> None:
    first, second = Window(D, D + timedelta(days=6)).halves()
    assert (first.days, second.days) == (3, 4)
    assert first.first == D and second.last == D + timedelta(days=6)
    assert second.first == first.last + timedelta(days=1)
    with pytest.raises(ValueError):
        Window(D, D).halves()


def test_window_prints_as_a_dicom_date_range() -> None:
    assert Window(D, date(2020, 1, 31)).dicom_range() == "20200101-20200131"
    assert Window(D, D).dicom_range() == "20200101"


def test_window_under_the_cap_is_queried_once() -> None:
    query, asked = archive_query([D, D + timedelta(days=3)])
    sweep = sweep_windows([Window(D, D + timedelta(days=9))], query, max_results=3)
    assert sorted(sweep.records) == [D, D + timedelta(days=3)]
    assert asked == [Window(D, D + timedelta(days=9))]
    assert (sweep.splits, sweep.failed_days) == (0, ())


def test_window_reaching_result_cap_is_split_in_halves() -> None:
    dates = [D + timedelta(days=i) for i in range(8)]
    query, asked = archive_query(dates)
    sweep = sweep_windows([Window(D, D + timedelta(days=7))], query, max_results=4)
    assert asked[:3] == [
        Window(D, D + timedelta(days=7)),
        Window(D, D + timedelta(days=3)),
        Window(D, D + timedelta(days=1)),
    ]
    assert sorted(sweep.records) == dates
    assert sweep.splits == 3 and sweep.failed_days == ()


def test_failing_window_is_split_until_the_query_succeeds() -> None:
    dates = [D + timedelta(days=i) for i in range(0, 20, 2)]
    query, _ = archive_query(dates, failing=lambda w: w.days > 5)
    sweep = sweep_windows([Window(D, D + timedelta(days=19))], query, max_results=100)
    assert Counter(sweep.records) == Counter(dates)
    assert sweep.failed_days == ()


def test_single_day_that_still_fails_is_recorded_and_its_partial_answers_kept() -> None:
    bad_day = D + timedelta(days=2)
    dates = [D, bad_day, bad_day, D + timedelta(days=3)]
    query, asked = archive_query(dates, failing=lambda w: w.first <= bad_day <= w.last)
    sweep = sweep_windows([Window(D, D + timedelta(days=3))], query, max_results=100)
    assert [day for day, _ in sweep.failed_days] == [Window(bad_day, bad_day)]
    assert "unable to process" in sweep.failed_days[0][1]
    assert sorted(sweep.records) == [D, bad_day, D + timedelta(days=3)]
    assert asked.count(Window(bad_day, bad_day)) == 1


def test_single_day_over_the_cap_is_recorded_not_looped_on() -> None:
    dates = [D] * 5
    query, asked = archive_query(dates)
    sweep = sweep_windows([Window(D, D + timedelta(days=1))], query, max_results=3)
    assert [day for day, _ in sweep.failed_days] == [Window(D, D)]
    assert "max_results=3" in sweep.failed_days[0][1]
    assert len(asked) == 3


def test_study_query_asks_for_every_key_the_inventory_needs() -> None:
    query = study_query(Window(D, date(2020, 1, 31)), ["CT", "MR"])
    assert query.StudyDate == "20200101-20200131"
    assert list(query.ModalitiesInStudy) == ["CT", "MR"]
    for keyword in ("StudyInstanceUID", "NumberOfStudyRelatedInstances", "InstanceAvailability",
                    "PatientID"):
        assert keyword in query and query[keyword].value in ("", None)
    assert study_query(Window(D, D), []).ModalitiesInStudy == ""


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=400), max_size=60),
    window_days=st.integers(min_value=1, max_value=120),
    cap=st.integers(min_value=1, max_value=8),
    pacs_limit=st.booleans(),
)
def test_every_study_is_found_exactly_once_when_no_single_day_is_over_the_cap(
    offsets: list[int], window_days: int, cap: int, pacs_limit: bool
) -> None:
    per_day = Counter(offsets)
    offsets = [o for o in offsets if per_day[o] < cap]  # only days that fit under the cap
    dates = [D + timedelta(days=o) for o in offsets]
    query, asked = archive_query(dates, cap=cap if pacs_limit else None)
    windows = date_windows(D, D + timedelta(days=400), window_days)
    sweep = sweep_windows(windows, query, max_results=cap)
    assert Counter(sweep.records) == Counter(dates)
    assert sweep.failed_days == ()
    assert len(asked) == sweep.queries == len(windows) + 2 * sweep.splits
