"""Throttle decisions: schedule slots, minimum/maximum concurrency and the delay formula."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from runner.plan.model import Slot, ThrottleSetting
from runner.plan.throttle import (
    MAX_DELAY_SECONDS,
    CompiledThrottle,
    ThroughputMeter,
    next_start,
    throttle_in_force,
)

LONDON = ZoneInfo("Europe/London")
WEEKDAY_DAYTIME = Slot(("mon", "tue", "wed", "thu", "fri"), (8 * 60, 18 * 60), "standard")
NIGHT = Slot(None, (20 * 60, 6 * 60), "overnight")
FALLBACK = Slot(None, None, "gentle")
STANDARD = CompiledThrottle.of(ThrottleSetting("standard", 4, 2, "10 + study_mb / 35 * 20"))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


@pytest.mark.parametrize(("when", "expected"), [
    ("2026-11-23 08:00", "standard"),   # Monday, first minute of the slot
    ("2026-11-23 17:59", "standard"),
    ("2026-11-23 18:00", "gentle"),     # end is exclusive
    ("2026-11-28 10:00", "gentle"),     # Saturday
    ("2026-11-23 21:00", "gentle"),     # night slot comes after the fallback: never reached
])
def test_first_matching_slot_wins(when: str, expected: str) -> None:
    assert throttle_in_force((WEEKDAY_DAYTIME, FALLBACK, NIGHT), None, at(when)) == expected


def test_hours_wrapping_midnight_belong_to_the_day_they_start() -> None:
    friday_night = Slot(("fri",), (22 * 60, 6 * 60), "overnight")
    assert throttle_in_force((friday_night,), None, at("2026-11-27 23:00")) == "overnight"
    assert throttle_in_force((friday_night,), None, at("2026-11-28 05:59")) == "overnight"
    assert throttle_in_force((friday_night,), None, at("2026-11-28 06:00")) is None
    assert throttle_in_force((friday_night,), None, at("2026-11-27 05:00")) is None


def test_no_matching_slot_pauses_the_device() -> None:
    gate = next_start(None, 0, None, 100.0, {})
    assert gate.wait is None and "paused" in gate.reason
    assert throttle_in_force((WEEKDAY_DAYTIME,), None, at("2026-11-28 10:00")) is None


def test_pinned_throttle_applies_at_all_times() -> None:
    assert throttle_in_force((WEEKDAY_DAYTIME,), "gentle", at("2026-11-23 09:00")) == "gentle"


def test_below_minimum_a_retrieve_starts_at_once() -> None:
    assert next_start(STANDARD, 1, last_start=99.0, now=100.0, values={"study_mb": 350}).wait == 0


def test_at_maximum_no_retrieve_starts() -> None:
    assert next_start(STANDARD, 4, last_start=0.0, now=1000.0, values={}).wait is None


def test_above_minimum_the_delay_runs_from_the_previous_start() -> None:
    gate = next_start(STANDARD, 2, last_start=100.0, now=150.0, values={"study_mb": 350.0})
    assert gate.delay == pytest.approx(210.0)      # 10 + 350 / 35 * 20
    assert gate.wait == pytest.approx(160.0)       # 100 + 210 - 150


def test_delay_already_elapsed_means_start_now() -> None:
    gate = next_start(STANDARD, 3, last_start=0.0, now=500.0, values={"study_mb": 35.0})
    assert gate.wait == 0.0 and gate.delay == pytest.approx(30.0)


def test_formula_sees_live_in_flight_count() -> None:
    throttle = CompiledThrottle.of(ThrottleSetting("t", 8, 1, "in_flight * 10"))
    assert next_start(throttle, 3, last_start=0.0, now=0.0, values={}).delay == 30.0


def test_undefined_delay_waits_the_longest_delay_not_forever() -> None:
    throttle = CompiledThrottle.of(ThrottleSetting("t", 8, 1, "study_mb / device_mb_per_s"))
    gate = next_start(throttle, 1, last_start=0.0, now=0.0, values={"study_mb": 10.0})
    assert gate.delay == MAX_DELAY_SECONDS


def test_throughput_meter_averages_over_its_window() -> None:
    meter = ThroughputMeter(window_seconds=60)
    meter.add(0.0, 100.0)
    meter.add(30.0, 200.0)
    assert meter.mb_per_s(30.0) == pytest.approx(10.0)
    assert meter.mb_per_s(80.0) == pytest.approx(200.0 / 60.0)  # first sample left the window
    assert meter.mb_per_s(200.0) == 0.0


def test_repeated_pending_counts_are_not_progress_but_new_counts_and_instances_are() -> None:
    from runner.dicom.move import MoveProgress
    from runner.execute.inflight import Retrieve
    from runner.ledger import RetrievePurpose

    retrieve = Retrieve("r", "1.2", "dev", RetrievePurpose.MIGRATE, 1, 0.0, 0.0)
    same = MoveProgress(remaining=5, completed=0, failed=0, warning=0)
    retrieve.progressed(same)
    first = retrieve.last_progress
    assert first > 0.0
    time.sleep(0.002)
    retrieve.progressed(same)
    assert retrieve.last_progress == first  # the same pending answer again: no progress
    retrieve.progressed(MoveProgress(remaining=4, completed=1, failed=0, warning=0))
    assert retrieve.last_progress > first
    later = retrieve.last_progress
    time.sleep(0.002)
    retrieve.progressed()  # an instance arrived
    assert retrieve.last_progress > later
