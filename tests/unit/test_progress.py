"""The progress line: the rate over a recent window, and an ETA only once it has settled."""

from __future__ import annotations

from datetime import date

import pytest

from runner.execute import progress
from runner.execute.progress import Tally
from runner.execute.work import Stage, StudyWork
from runner.inventory.model import Location, Study


def _works(count: int, megabytes: float) -> list[StudyWork]:
    return [StudyWork(Study(f"1.2.{i}", date(2020, 1, 1), "CT", 10, megabytes,
                            Location.LOCAL), 0, i, "dev", expected=10) for i in range(count)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    return clock


def test_no_eta_before_the_rate_has_settled(clock: Clock) -> None:
    works = _works(10, 100.0)
    tally = Tally(works, ["local"])
    started = clock.now
    clock.now += 5
    line = tally.snapshot(50_000_000, started, {}).line()
    assert "ETA when the rate settles" in line  # 5 s in, nothing settled: no guess
    clock.now += 115
    assert "ETA when the rate settles" in tally.snapshot(200_000_000, started, {}).line()
    works[0].stage = Stage.VERIFIED
    tally.settle(works[0])
    line = tally.snapshot(200_000_000, started, {}).line()
    assert "1.7 MB/s; ETA 9 min 00 s" in line  # 900 MB left at 200 MB / 120 s


def test_the_rate_is_that_of_the_last_ten_minutes(clock: Clock) -> None:
    works = _works(100, 100.0)
    tally = Tally(works, ["local"])
    started = clock.now
    for work in works[:10]:
        work.stage = Stage.VERIFIED
        tally.settle(work)
    received = 0
    for _ in range(20):  # an hour at 10 MB/s (a recall-heavy start) ...
        clock.now += 180
        received += 1_800_000_000
        tally.snapshot(received, started, {})
    for _ in range(4):  # ... then twelve minutes at 1 MB/s
        clock.now += 180
        received += 180_000_000
        snapshot = tally.snapshot(received, started, {})
    assert snapshot.rate == pytest.approx(1.0)  # not the run's mean of 7.5
    assert "1.0 MB/s; ETA 2 h 30 min" in snapshot.line()  # 90 studies of 100 MB left
