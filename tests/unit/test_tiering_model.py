"""The local store: LRU push-off to the low-water mark, recalls, recent evictions, re-dating."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from runner.tiering.model import LocalStore

TODAY = date(2013, 12, 31).toordinal()


def store_of(capacity: float, local: Sequence[tuple[str, float, int]],
             low_water: float | None = None, recent_days: int = 14) -> LocalStore[str]:
    """A store holding `local` (key, MB, acquired), least recently accessed first."""
    store: LocalStore[str] = LocalStore(capacity, capacity if low_water is None else low_water,
                                        recent_days, TODAY)
    for key, size, acquired in local:
        store.know(key, size, acquired, local=True)
    return store


def test_accessing_a_local_study_recalls_nothing_and_refreshes_it() -> None:
    store = store_of(200, [("a", 100, 1), ("b", 100, 2)])
    store.know("c", 100, 3)
    assert store.access("a") == 0.0
    assert store.local_keys() == ["b", "a"]
    store.access("c")
    assert store.local_keys() == ["a", "c"]  # b, not a, was least recently accessed
    counts = store.counts()
    assert (counts.recalls, counts.recalled_mb, counts.evictions) == (1, 100, 1)


def test_a_recall_with_room_left_pushes_nothing_off() -> None:
    store = store_of(300, [("a", 100, 1)])
    store.know("b", 120, 2)
    assert store.access("b") == 120
    assert store.is_local("b") and store.counts().evictions == 0
    assert store.counts().used_mb == 220


def test_a_full_store_is_pushed_off_down_to_the_low_water_mark() -> None:
    store = store_of(400, [(k, 100, 1) for k in "abcd"], low_water=300)
    store.know("e", 100, 2)
    store.access("e")  # 500 MB > 400: push off a (400), then b (300)
    assert store.local_keys() == ["c", "d", "e"]
    assert store.counts().evictions == 2 and store.counts().used_mb == 300
    store.know("f", 50, 2)
    store.access("f")  # 350 MB <= 400: nothing pushed off
    assert store.local_keys() == ["c", "d", "e", "f"]


def test_only_studies_acquired_within_recent_days_count_as_recent_evictions() -> None:
    store = store_of(200, [("old", 100, TODAY - 15), ("recent", 100, TODAY - 14)])
    store.know("x", 100, 1)
    store.know("y", 100, 1)
    store.access("x")
    assert store.counts().recent_evictions == 0  # "old" went: 15 days is not recent
    store.access("y")
    assert store.counts().recent_evictions == 1  # "recent" went: day 14 still counts
    assert store.counts().evictions == 2


def test_re_dating_protects_a_recent_study_from_push_off() -> None:
    local = [("recent", 100, TODAY - 1), ("o1", 100, 1), ("o2", 100, 1)]
    without, redated = store_of(300, local), store_of(300, local)
    for store in (without, redated):
        store.know("n", 100, 1)
    assert redated.refresh("recent")
    for store in (without, redated):
        store.access("n")
    assert not without.is_local("recent") and without.counts().recent_evictions == 1
    assert redated.is_local("recent") and redated.counts().recent_evictions == 0
    assert redated.local_keys() == ["o2", "recent", "n"]


def test_re_dating_a_study_that_is_not_local_recalls_nothing() -> None:
    store = store_of(100, [("a", 100, 1)])
    store.know("b", 100, 1)
    assert not store.refresh("b")
    assert not store.is_local("b") and store.counts().recalls == 0


def test_a_new_study_is_stored_local_and_pushes_the_oldest_off_without_a_recall() -> None:
    store = store_of(200, [("a", 100, 1), ("b", 100, 2)], low_water=160)
    store.arrive("new", 60, TODAY)  # 260 MB > 200: a goes (160 MB, at the low-water mark)
    assert store.local_keys() == ["b", "new"]
    assert store.counts().recalls == 0 and store.counts().evictions == 1
    store.arrive("newer", 60, TODAY)  # 220 MB > 200: b goes (120 MB)
    assert store.local_keys() == ["new", "newer"]


def test_the_study_just_recalled_is_never_pushed_off_even_when_bigger_than_the_store() -> None:
    store = store_of(100, [("a", 100, 1)], low_water=90)
    store.know("huge", 500, 1)
    assert store.access("huge") == 500
    assert store.local_keys() == ["huge"]
    assert store.counts().evictions == 1


def test_a_copy_runs_independently_of_its_original() -> None:
    store = store_of(300, [("a", 100, 1)])
    store.know("b", 100, 1)
    twin = store.copy()
    twin.access("b")
    twin.arrive("c", 10, TODAY)
    assert store.local_keys() == ["a"] and store.counts().recalls == 0
    assert not store.is_local("c")
    assert twin.local_keys() == ["a", "b", "c"] and twin.counts().recalls == 1


# --- the seed's example ---------------------------------------------------------------
# It is the end of 2013 and the local store (200 MB) holds 2012 and 2013; 2007-2011 are on
# nearline; one 100 MB study a year. Plain LRU (low water = capacity).
#
# oldest-first: 2007 recall, pushes 2012 off | 2008 recall, pushes 2013 off
#   2009 recall (2007 off) | 2010 (2008 off) | 2011 (2009 off)
#   2012 recalled again (2010 off) | 2013 recalled again (2011 off)
#   => 7 recalls, 700 MB, 7 push-offs; 2012 and 2013 were recalled although local at start.
# local-first: 2012 local, 2013 local (no recall), then 2007 (2012 off), 2008 (2013 off),
#   2009 (2007 off), 2010 (2008 off), 2011 (2009 off)
#   => 5 recalls, 500 MB: exactly the cloud-only years.

YEARS = range(2007, 2014)


def seed_store() -> LocalStore[int]:
    store: LocalStore[int] = LocalStore(200, 200, 14, TODAY)
    for year in YEARS:
        store.know(year, 100, date(year, 12, 20).toordinal(), local=year >= 2012)
    return store


def test_seed_example_oldest_first_recalls_the_studies_it_pushed_off() -> None:
    store = seed_store()
    recalled = [year for year in YEARS if store.access(year)]
    assert recalled == [2007, 2008, 2009, 2010, 2011, 2012, 2013]
    counts = store.counts()
    assert (counts.recalls, counts.recalled_mb, counts.evictions) == (7, 700, 7)
    assert counts.recent_evictions == 1  # the 2013 study (20 Dec) pushed off by 2008


def test_seed_example_local_first_recalls_only_the_cloud_only_years() -> None:
    store = seed_store()
    recalled = [year for year in (2012, 2013, 2007, 2008, 2009, 2010, 2011) if store.access(year)]
    assert recalled == [2007, 2008, 2009, 2010, 2011]
    counts = store.counts()
    assert (counts.recalls, counts.recalled_mb, counts.evictions) == (5, 500, 5)
