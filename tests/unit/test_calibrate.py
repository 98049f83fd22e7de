"""Calibration: the pilot run's retrieves replace the tier model's assumed speeds."""

from __future__ import annotations

from pathlib import Path

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
    assert calibration.measured == {"device_mb_per_s": 6, "nearline_mb_per_s": 3,
                                    "retrieve_latency_seconds": 3}
    assert calibration.parameters.retrieve_latency_seconds == pytest.approx(0.5)
    text = calibration.describe()
    assert "device_mb_per_s 20 (from 6 retrieves)" in text
    assert "nearline_mb_per_s 4 (from 3 retrieves)" in text and "the rest assumed" in text


def test_too_few_retrieves_leave_a_figure_assumed() -> None:
    pilot = [_local(100, 5)] * MIN_SAMPLES + [_nearline(100, 25, 5)] * (MIN_SAMPLES - 1)
    calibration = calibrate(TierParameters(nearline_mb_per_s=7.0), pilot)
    assert calibration.parameters.nearline_mb_per_s == 7.0
    assert set(calibration.measured) == {"device_mb_per_s", "retrieve_latency_seconds"}
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
                                                   "nearline_mb_per_s": 3,
                                                   "retrieve_latency_seconds": 3}


def test_the_ledger_gives_device_trouble_by_concurrency_and_forward_and_verify_rates(
        tmp_path: Path) -> None:
    import time

    from runner.ledger import Ledger, RetrievePurpose, VerificationMethod
    from runner.ledger.calibration import pilot_rates

    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        for _ in range(2):  # alone: fine; with another in flight: refused (trouble)
            alone = ledger.record_retrieve_started(study_uid="1.1", device="pacs",
                                                   purpose=RetrievePurpose.MIGRATE)
            crowded = ledger.record_retrieve_started(study_uid="1.2", device="pacs",
                                                     purpose=RetrievePurpose.MIGRATE)
            ledger.record_retrieve_finished(crowded, final_status=0xA701,
                                            category="out_of_resources")
            ledger.record_retrieve_finished(alone, final_status=0, category="success")
        for n in range(4):
            ledger.record_received(sop_instance_uid=f"5.{n}", study_uid="1.1", series_uid="4",
                                   sop_class_uid="1.2", transfer_syntax="1.2.840.10008.1.2.1",
                                   nbytes=2_000_000, spool_name=f"s{n}")
            ledger.record_forwarded(sop_instance_uid=f"5.{n}", study_uid="1.1", ok=True,
                                    status=0)
            ledger.record_verification(study_uid=f"1.{n}", method=VerificationMethod.COUNT,
                                       expected=1, found=1, ok=True)
            time.sleep(0.01)  # the ledger stamps its own times: a span to divide by
    rates = pilot_rates(path)
    assert rates.trouble_by_concurrency == {1: (2, 0), 2: (2, 2)}
    assert rates.forwards == 4 and rates.forward_mb_per_s is not None
    assert rates.forward_mb_per_s > 8.0 / 10  # 8 MB in well under ten seconds
    assert rates.verifications == 4 and rates.verified_per_hour is not None
    calibration = calibrate(TierParameters(), [], rates)
    lines = calibration.rate_lines()
    assert "by retrieves in flight on the device, measured: 1: 0 of 2, 2: 2 of 2" in lines[0]
    assert "forward" in lines[1] and "(measured, 4 instances)" in lines[1]
    assert "not measured" in calibrate(TierParameters(), []).rate_lines()[1]


def test_re_dates_get_their_own_latency_their_whole_time_less_the_flow() -> None:
    pilot = [_local(100, 5), _local(200, 10), _local(50, 2.5)]  # 20 MB/s, 0.5 s latency
    redates = [RetrieveTiming("local", mb, mb / 20 + 0.1, 0.0, "redate") for mb in (10, 40, 80)]
    calibration = calibrate(TierParameters(), pilot + redates)
    assert calibration.parameters.redate_latency_seconds == pytest.approx(0.1)
    assert calibration.parameters.retrieve_latency_seconds == pytest.approx(0.5)  # unmixed
    assert calibration.measured["redate_latency_seconds"] == 3


def test_a_re_date_among_others_flows_at_its_share_of_the_device() -> None:
    pilot = [_local(100, 5), _local(200, 10), _local(50, 2.5)]  # 20 MB/s a retrieve
    # four in flight on a device of 40 MB/s in all (the default): 10 MB/s each
    redates = [RetrieveTiming("local", mb, mb / 10 + 0.1, 0.0, "redate", in_flight=4)
               for mb in (10, 40, 80)]
    calibration = calibrate(TierParameters(), pilot + redates)
    assert calibration.parameters.redate_latency_seconds == pytest.approx(0.1)


def test_local_studies_pushed_off_before_their_turn_are_timed_as_recalls() -> None:
    # two local studies found local (0.5 s), three pushed off before their turn and recalled
    # (as slow as the nearline ones): recalls at 4 MB/s, whatever the planned tier
    pushed_off = [RetrieveTiming("local", mb, 0.5 + mb / 4, 1.0) for mb in (100, 40, 60)]
    pilot = [_local(100, 5), _local(100, 5, latency=0.6), *pushed_off,
             _nearline(100, 25, 5), _nearline(40, 10, 2)]
    calibration = calibrate(TierParameters(), pilot)
    assert calibration.parameters.nearline_mb_per_s == pytest.approx(4.0, rel=0.01)
    assert calibration.measured["nearline_mb_per_s"] == 5
    # the hits' latency goes with the recalls measured past it
    assert calibration.parameters.retrieve_latency_seconds == pytest.approx(0.55)


def test_hits_that_spread_over_three_times_the_quickest_are_still_hits() -> None:
    # a busy device answers a look-up in 36 to 114 ms; a recall waits 0.8 s more; one
    # nearline study was found local (read by a clinician just before), one local study
    # had been pushed off (recalled)
    hits = [_local(0.8, 0.04, latency) for latency in (0.036, 0.05, 0.075, 0.09, 0.114)]
    found = RetrieveTiming("nearline", 0.8, 0.157, 0.04)
    recalls = [_nearline(0.8, recall, 0.04) for recall in (0.35, 0.38, 0.43)]
    pushed_off = _local(0.8, 0.04, 0.92)
    from runner.tiering.calibrate import recall_threshold
    assert recall_threshold([*hits, found, *recalls, pushed_off]) == 0.157
    calibration = calibrate(TierParameters(), [*hits, found, *recalls, pushed_off])
    assert calibration.measured["nearline_mb_per_s"] == 4
    assert calibration.parameters.retrieve_latency_seconds == pytest.approx(0.075)
    # each recall's MB over its latency past a hit's: 0.85, 0.88, 0.93 and 0.92 s
    assert calibration.parameters.nearline_mb_per_s == pytest.approx(
        (0.8 / 0.845 + 0.8 / 0.805) / 2)


def test_a_device_s_total_rate_is_what_its_retrieves_gave_together() -> None:
    # three retrieves of 10 MB, each flowing 1 s at 10 MB/s, two at once, the third half
    # overlapping: 30 MB in the 1.5 s something flowed
    pilot = [RetrieveTiming("local", 10, 0.5, 1.0, "migrate", "pacs", start)
             for start in (100.0, 100.0, 100.5)]
    calibration = calibrate(TierParameters(device_total_mb_per_s=40.0), pilot)
    assert calibration.parameters.device_total_mb_per_s == pytest.approx(20.0)
    assert calibration.measured["device_total_mb_per_s"] == 3
    # never less than one retrieve's flow (retrieves that never overlapped)
    apart = [RetrieveTiming("local", 10, 0.5, 1.0, "migrate", "pacs", 100.0 + 10 * i)
             for i in range(3)]
    assert calibrate(TierParameters(), apart).parameters.device_total_mb_per_s == \
        pytest.approx(10.0)


def _sized(modality: str, instances: int, mb: float) -> RetrieveTiming:
    return RetrieveTiming("local", mb, 0.5, 1.0, modality=modality, instances=instances)


def test_the_pilot_measures_the_mb_an_instance_holds_by_modality() -> None:
    from runner.inventory.model import Study
    from runner.profile.tiers import Location

    pilot = [_sized("CT", 100, 50.0), _sized("CT", 200, 104.0), _sized("CT", 10, 5.0),
             _sized("CR", 2, 40.0), _sized("CR", 1, 18.0), _sized("CR", 3, 66.0),
             _sized("MG", 4, 240.0)]  # one mammography study: too few for a figure of its own
    sizes = calibrate(TierParameters(), pilot).sizes
    assert sizes.per_instance["CT"] == pytest.approx(0.5)
    assert sizes.per_instance["CR"] == pytest.approx(20.0)
    assert "MG" not in sizes.per_instance
    assert sizes.per_instance[""] == pytest.approx(523.0 / 320)  # every byte over every instance
    assert sizes(Study("1", None, "CR", 5, None, Location.LOCAL)) == pytest.approx(100.0)
    assert sizes(Study("2", None, "MG", 10, None, Location.LOCAL)) == pytest.approx(5230 / 320)
    assert sizes(Study("3", None, "CR", 5, 7.0, Location.LOCAL)) == 7.0  # a size given stands
    text = calibrate(TierParameters(), pilot).describe()
    assert "MB per instance CR 20, CT 0.5, any other 1.63 (from 7 retrieves)" in text
    unmeasured = calibrate(TierParameters(), pilot[:2]).sizes
    assert unmeasured(Study("4", None, "CR", 5, None, Location.LOCAL)) == 2.5  # as planned
    speeds_only = [_local(100, 5)] * MIN_SAMPLES  # no instances counted
    assert "study sizes as planned" in calibrate(TierParameters(), speeds_only).describe()


def test_the_forecast_sizes_studies_as_the_pilot_measured_them() -> None:
    from datetime import date, timedelta

    from runner.inventory.model import Study
    from runner.profile.tiers import Location
    from runner.tiering.forecast import forecast_strategies
    from tests.unit.test_forecast import QUIET, plan_of, profile

    today = date(2026, 11, 27)
    studies = [Study(f"2.{i}", date(2010, 1, 1) + timedelta(days=i), "CR", 4, None,
                     Location.NEARLINE if i < 6 else Location.LOCAL) for i in range(10)]
    site = profile(tiering={"order": ["local", "nearline"]})
    plan = plan_of(site, studies, today)
    # the pilot found 10 MB in each CR instance, not the 0.5 MB planned
    pilot = [_sized("CR", 4, 40.0)] * MIN_SAMPLES
    assumed = forecast_strategies(site, plan, params=QUIET).result("local-first/no-redate")
    measured = forecast_strategies(site, plan, params=QUIET, pilot=pilot
                                   ).result("local-first/no-redate")
    assert assumed.recalled_gb == pytest.approx(6 * 2.0 / 1000)  # 6 nearline studies, 2 MB
    assert measured.recalled_gb == pytest.approx(6 * 40.0 / 1000)
    assert measured.hours > assumed.hours
    from runner.tiering.forecast import forecast_json
    assert forecast_json(forecast_strategies(site, plan, params=QUIET, pilot=pilot)
                         )["mb_per_instance"] == {"by_modality": {"CR": 10.0, "*": 10.0},
                                                  "retrieves": 3}
    assert forecast_json(forecast_strategies(site, plan, params=QUIET))["mb_per_instance"] == {}


def test_the_ledger_gives_each_retrieve_its_modality_instances_and_company(
        tmp_path: Path) -> None:
    import time
    from datetime import UTC, datetime

    from runner.ledger import (
        InstanceReceived,
        Ledger,
        RetrievePurpose,
        StudiesPlanned,
        StudyPlanned,
    )
    from runner.ledger.queries import pilot_timings
    from runner.profile.tiers import Location

    path = tmp_path / "ledger.duckdb"
    with Ledger.open(path) as ledger:
        ledger.record(StudiesPlanned(studies=tuple(StudyPlanned(
            study_uid=f"S{i}", study_date=None, modality="MR", tier=Location.LOCAL,
            device="pacs", planned_instances=4, planned_mb=2.0, phase_index=0, order_index=i)
            for i in range(3))))
        moved = ledger.record_retrieve_started(study_uid="S0", device="pacs",
                                               purpose=RetrievePurpose.MIGRATE)
        for n in range(4):
            ledger.record(InstanceReceived(
                sop_instance_uid=f"5.{n}", study_uid="S0", series_uid="4", sop_class_uid="1.2",
                transfer_syntax="1.2.840.10008.1.2.1", retrieve_id=moved, nbytes=250_000,
                spool_name=f"s{n}", at=datetime.now(UTC)))
            time.sleep(0.01)
        ledger.record_retrieve_finished(moved, final_status=0, category="success")
        # three re-dates, each started while the ones before were in flight
        redates = [ledger.record_retrieve_started(study_uid=f"S{i}", device="pacs",
                                                  purpose=RetrievePurpose.REDATE)
                   for i in range(3)]
        for retrieve in reversed(redates):
            time.sleep(0.01)
            ledger.record_retrieve_finished(retrieve, final_status=0, category="success")
    timings = pilot_timings(path)
    migrate = [t for t in timings if t.purpose == "migrate"]
    assert [(t.modality, t.instances, t.megabytes) for t in migrate] == [("MR", 4, 1.0)]
    redate = sorted((t.in_flight, t.modality, t.instances) for t in timings
                    if t.purpose == "redate")
    assert redate == [(1, "MR", 4), (2, "MR", 4), (3, "MR", 4)]
