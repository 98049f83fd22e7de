"""Calibration: the pilot run's retrieves replace the tier model's assumed speeds."""

from __future__ import annotations

import pytest

from runner.ledger.queries import RetrieveTiming
from runner.tiering.calibrate import MIN_SAMPLES, calibrate
from runner.tiering.params import TierParameters


def _local(mb: float, flow: float, latency: float = 0.5) -> RetrieveTiming:
    return RetrieveTiming("local", mb, latency, flow)


def _nearline(mb: float, recall: float, flow: float) -> RetrieveTiming:
    return RetrieveTiming("nearline", mb, 0.5 + recall, flow)


def test_the_pilots_flow_and_recall_speeds_replace_the_assumptions() -> None:
    pilot = [_local(100, 5), _local(200, 10), _local(50, 2.5),
             _nearline(100, 25, 5), _nearline(40, 10, 2), _nearline(300, 75, 15)]
    calibration = calibrate(TierParameters(), pilot)
    assert calibration.parameters.device_mb_per_s == pytest.approx(20.0)
    assert calibration.parameters.nearline_mb_per_s == pytest.approx(4.0)
    assert calibration.measured == {"device_mb_per_s": 6, "nearline_mb_per_s": 3}
    text = calibration.describe()
    assert "device_mb_per_s 20 (from 6 retrieves)" in text
    assert "nearline_mb_per_s 4 (from 3 retrieves)" in text and "the rest assumed" in text


def test_too_few_retrieves_leave_a_figure_assumed() -> None:
    pilot = [_local(100, 5)] * MIN_SAMPLES + [_nearline(100, 25, 5)] * (MIN_SAMPLES - 1)
    calibration = calibrate(TierParameters(nearline_mb_per_s=7.0), pilot)
    assert calibration.parameters.nearline_mb_per_s == 7.0
    assert set(calibration.measured) == {"device_mb_per_s"}
    assert "every figure assumed" in calibrate(TierParameters(), []).describe()


def test_the_forecast_runs_on_the_measured_speeds_and_says_so() -> None:
    from runner.tiering.forecast import forecast_json, forecast_lines, forecast_strategies
    from tests.unit.test_forecast import QUIET, slow_migration

    site, plan = slow_migration()
    pilot = [_local(100, 5)] * 3 + [_nearline(100, 50, 5)] * 3  # recalls at 2 MB/s
    assumed = forecast_strategies(site, plan, params=QUIET)
    measured = forecast_strategies(site, plan, params=QUIET, pilot=pilot)
    assert measured.parameters.nearline_mb_per_s == pytest.approx(2.0)
    assert measured.chosen.hours > assumed.chosen.hours  # slower recalls than assumed
    assert "measured by the pilot run: device_mb_per_s 20" in "\n".join(
        forecast_lines(measured))
    assert forecast_json(measured)["measured"] == {"device_mb_per_s": 6,
                                                   "nearline_mb_per_s": 3}
