"""The census strategy (runner.inventory.census) against simulated archives: no network.

Each fake archive answers study-level queries the way a PACS does: a date range matches
dated studies in it, any date (universal matching) matches every study, undated ones
included; a Patient ID key matches by prefix (`12*`) or exactly. Caps come in the three
kinds found in the field: silent (the first N with success: Orthanc's LimitFindResults),
refused (0xA700, dcm4chee's QueryMaxNumberOfResults) and cut short (a cancel status).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.inventory.census import (
    Answer,
    CensusRefused,
    CensusResult,
    Keys,
    Outcome,
    Seen,
    split_keys,
    take_census,
)
from runner.inventory.windows import Window, date_windows

D = date(2020, 1, 1)


@dataclass(frozen=True)
class Held:
    uid: str
    study_date: date | None
    patient_id: str


def _seen(held: Held) -> Seen:
    return Seen(held.uid, held.study_date, held.patient_id)


def _matches(keys: Keys, held: Held) -> bool:
    window = keys.window
    if window is not None and (held.study_date is None
                               or not window.first <= held.study_date <= window.last):
        return False
    if keys.exact:
        return held.patient_id == keys.patient
    return held.patient_id.startswith(keys.patient)


def archive(studies: list[Held], cap: int | None = None, kind: str = "silent",
            refuse: Callable[[Keys], bool] = lambda k: False,
            ) -> tuple[Callable[[Keys], Answer[Held]], list[Keys]]:
    asked: list[Keys] = []

    def query(keys: Keys) -> Answer[Held]:
        asked.append(keys)
        if refuse(keys):
            return Answer((), Outcome.REFUSED, "association rejected: calling AE not known")
        found = tuple(s for s in studies if _matches(keys, s))
        if cap is None or len(found) <= cap:
            return Answer(found, Outcome.ANSWERED)
        if kind == "silent":
            return Answer(found[:cap], Outcome.ANSWERED)
        if kind == "refused":
            return Answer((), Outcome.FULL, "0xA700 out of resources")
        return Answer(found[:cap], Outcome.FULL, "0xFE00 cancelled")

    return query, asked


def census(studies: list[Held], windows: list[Window], cap: int | None = None,
           kind: str = "silent", max_results: int = 1000, sweep: bool = True,
           refuse: Callable[[Keys], bool] = lambda k: False,
           ) -> tuple[CensusResult[Held], list[Keys]]:
    query, asked = archive(studies, cap, kind, refuse)
    return take_census(query, _seen, windows, sweep, max_results), asked


def _day(n: int) -> date:
    return D + timedelta(days=n)


# --- windows ------------------------------------------------------------------------------


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
    first, second = Window(D, _day(6)).halves()
    assert (first.days, second.days) == (3, 4)
    assert first.first == D and second.last == _day(6)
    assert second.first == first.last + timedelta(days=1)
    with pytest.raises(ValueError):
        Window(D, D).halves()


def test_window_prints_as_a_dicom_date_range() -> None:
    assert Window(D, date(2020, 1, 31)).dicom_range() == "20200101-20200131"
    assert Window(D, D).dicom_range() == "20200101"
    assert Window(date(1800, 1, 1), date(9999, 12, 31)).dicom_range() == "18000101-99991231"


# --- what the census finds ----------------------------------------------------------------


def test_undated_and_out_of_window_studies_are_found_by_the_sweep() -> None:
    studies = [Held("1.1", _day(3), "P1"), Held("1.2", None, "P2"), Held("1.3", None, "P1"),
               Held("1.4", date(1990, 5, 5), "P3"), Held("1.5", date(2031, 1, 1), "P4")]
    result, asked = census(studies, date_windows(D, _day(30), 10))
    assert set(result.records) == {"1.1", "1.2", "1.3", "1.4", "1.5"}
    assert result.complete and result.cap is None
    assert Keys(None) in asked  # one query with any date


def test_windows_alone_miss_the_undated_studies() -> None:
    studies = [Held("1.1", _day(3), "P1"), Held("1.2", None, "P2")]
    result, _ = census(studies, date_windows(D, _day(30), 10), sweep=False)
    assert set(result.records) == {"1.1"}


def test_a_source_that_caps_silently_is_found_out_and_fully_counted() -> None:
    studies = [Held(f"2.{i}", _day(i % 40) if i % 7 else None, f"{i % 13:02d}{i}")
               for i in range(120)]
    result, _ = census(studies, date_windows(D, _day(59), 30), cap=5, kind="silent")
    assert set(result.records) == {s.uid for s in studies}
    assert result.cap == 5
    assert result.complete


@pytest.mark.parametrize("kind", ["refused", "cancel"])
def test_a_source_that_says_its_answer_is_partial_is_split_until_complete(kind: str) -> None:
    studies = [Held(f"3.{i}", _day(i % 10) if i % 4 else None, f"A{i}") for i in range(60)]
    result, _ = census(studies, date_windows(D, _day(9), 10), cap=4, kind=kind)
    assert set(result.records) == {s.uid for s in studies}
    assert result.cap is None and result.complete


def test_an_answer_reaching_max_results_is_split() -> None:
    studies = [Held(f"4.{i}", _day(i), "P") for i in range(8)]
    result, asked = census(studies, [Window(D, _day(7))], max_results=4, sweep=False)
    assert asked[:3] == [Keys(Window(D, _day(7))), Keys(Window(D, _day(3))),
                         Keys(Window(D, _day(1)))]
    assert set(result.records) == {s.uid for s in studies}
    assert result.splits == 3


def test_a_full_single_day_is_split_by_patient_id_prefix() -> None:
    studies = [Held(f"5.{i}", D, f"{i}") for i in range(30)]
    result, asked = census(studies, [Window(D, D)], cap=6, kind="refused", sweep=False)
    assert set(result.records) == {s.uid for s in studies}
    assert Keys(Window(D, D), "1") in asked and Keys(Window(D, D), "1", exact=True) in asked


def test_split_keys_partition_a_query() -> None:
    assert split_keys(Keys(Window(D, _day(1)))) == [Keys(Window(D, D)), Keys(Window(_day(1),
                                                                             _day(1)))]
    prefixes = split_keys(Keys(None, "12"))
    assert prefixes[0] == Keys(None, "12", exact=True)
    assert Keys(None, "123") in prefixes and Keys(None, "12A") in prefixes
    assert not any(set(k.patient[2:]) & set("*?\\") for k in prefixes)
    assert split_keys(Keys(Window(D, D), "X", exact=True)) == []


def test_studies_with_an_empty_patient_id_beyond_the_cap_are_a_named_gap() -> None:
    studies = [Held(f"6.{i}", None, "") for i in range(5)] + [Held("6.9", None, "P")]
    result, _ = census(studies, [], cap=3, kind="silent")
    assert not result.complete
    assert any("empty or unusual Patient ID" in gap for gap in result.gaps)


# --- refusals are not full answers ----------------------------------------------------------


def test_a_source_refusing_the_first_query_stops_the_census_at_once() -> None:
    studies = [Held("7.1", D, "P")]
    with pytest.raises(CensusRefused, match="calling AE"):
        census(studies, date_windows(D, _day(3650), 30), refuse=lambda k: True)
    query, asked = archive(studies, refuse=lambda k: True)
    with pytest.raises(CensusRefused):
        take_census(query, _seen, date_windows(D, _day(3650), 30), True, 1000)
    assert len(asked) == 2  # tried once more, then given up: no window is split on it


def test_a_refused_window_is_a_gap_and_is_not_split() -> None:
    studies = [Held(f"8.{i}", _day(i * 10), "P") for i in range(6)]
    bad = Window(_day(20), _day(29))
    result, asked = census(studies, date_windows(D, _day(59), 10), sweep=False,
                           refuse=lambda k: k.window == bad)
    assert asked.count(Keys(bad)) == 2 and len(asked) == 7
    assert not result.complete and "refused" in result.gaps[0]
    assert set(result.records) == {"8.0", "8.1", "8.3", "8.4", "8.5"}


def test_refusals_in_a_row_stop_the_census() -> None:
    studies = [Held("9.1", D, "P")]
    with pytest.raises(CensusRefused):
        census(studies, date_windows(D, _day(99), 10), sweep=False,
               refuse=lambda k: k.window is not None and k.window.first > D)


# --- the promise, for any archive ------------------------------------------------------------


held_studies = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(min_value=-50, max_value=120)),
              st.text(alphabet="0129AZ", min_size=1, max_size=3)),
    max_size=70)


@settings(max_examples=150, deadline=None)
@given(rows=held_studies, cap=st.integers(min_value=2, max_value=9),
       kind=st.sampled_from(["silent", "refused", "cancel"]),
       window_days=st.integers(min_value=1, max_value=90))
def test_every_study_is_found_whatever_the_cap(rows: list[tuple[int | None, str]], cap: int,
                                               kind: str, window_days: int) -> None:
    studies = [Held(f"1.{i}", None if offset is None else _day(offset), patient)
               for i, (offset, patient) in enumerate(rows)]
    undated = {s.patient_id for s in studies if s.study_date is None}
    per_patient = Counter(s.patient_id for s in studies if s.patient_id in undated)
    per_day = Counter((s.study_date, s.patient_id) for s in studies if s.study_date)
    if any(n >= cap for n in (*per_patient.values(), *per_day.values())):
        # No query can tell these apart: one Patient ID with an undated study among more
        # studies than the cap, or more than the cap under one Patient ID on one day.
        return
    result, asked = census(studies, date_windows(D, _day(60), window_days), cap=cap,
                           kind=kind)
    assert set(result.records) == {s.uid for s in studies}
    assert result.complete
    assert len(asked) == result.queries


def test_a_source_ignoring_the_patient_id_key_is_a_gap_not_an_endless_split() -> None:
    studies = [Held(f"10.{i}", None, f"P{i}") for i in range(8)]
    query, asked = archive(studies, cap=3, kind="cancel")

    def ignoring(keys: Keys) -> Answer[Held]:  # like Orthanc given "%*": every study matches
        return query(Keys(keys.window))

    result = take_census(ignoring, _seen, [], True, 1000)
    assert not result.complete
    assert any("does not match Patient ID keys" in gap for gap in result.gaps)
    assert len(asked) < 100


def test_a_probe_at_a_source_ignoring_patient_ids_stops_without_a_gap() -> None:
    studies = [Held(f"11.{i}", None, f"P{i}") for i in range(8)]
    query, asked = archive(studies)  # no cap: the universal answer is complete

    def ignoring(keys: Keys) -> Answer[Held]:
        return query(Keys(keys.window))

    result = take_census(ignoring, _seen, [], True, 1000)
    assert set(result.records) == {s.uid for s in studies}
    assert result.complete
    assert len(asked) == 2  # the universal query, and one probe child that gave it away
