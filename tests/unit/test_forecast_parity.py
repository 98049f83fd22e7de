"""The model does what the runner does: re-dates are retrieves that take device time, the
re-dated window takes new arrivals in, clinicians also open older priors."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from runner.plan.model import Plan
from runner.profile.models import SiteProfile
from runner.profile.tiers import Location
from runner.tiering.forecast import forecast_strategies
from runner.tiering.scenario import build_scenario, start_of
from runner.tiering.simulate import Simulation
from runner.tiering.strategy import Strategy
from tests.unit.test_forecast import ONE_AT_A_TIME, QUIET, by_name, plan_of, profile, study

TODAY = date(2026, 11, 27)


def recent_and_old(every_hours: float = 1.0) -> tuple[SiteProfile, Plan]:
    """40 old local studies to migrate one at a time and 10 recent local ones to keep
    re-dating, all 100 MB; re-dated every `every_hours`."""
    studies = [study(f"6.{i}", date(2015, 1, 1) + timedelta(days=i), Location.LOCAL)
               for i in range(40)]
    studies += [study(f"7.{i}", TODAY - timedelta(days=i), Location.LOCAL) for i in range(10)]
    site = profile(throttles={"steady": ONE_AT_A_TIME},
                   redate={"recent_days": 14, "every_hours": every_hours})
    return site, plan_of(site, studies, TODAY)


def test_re_dates_are_retrieves_that_take_the_devices_time() -> None:
    site, plan = recent_and_old()
    params = replace(QUIET, device_mb_per_s=1.0, redate_headroom_fraction=0.0,
                     redate_every_hours=1.0)
    results = by_name(forecast_strategies(site, plan, params=params))
    without, with_redates = results["local-first/no-redate"], results["local-first/redate"]
    # 50 studies of 100 s each; every re-date takes 100 s of the one device as well
    assert without.hours == pytest.approx(50 * 100 / 3600)
    assert with_redates.redates >= 10 * 2  # a round at the start, one each hour after
    assert with_redates.hours == pytest.approx(
        (50 + with_redates.redates) * 100 / 3600, rel=0.02)


def test_new_arrivals_join_the_re_dated_window_as_the_runner_finds_them() -> None:
    site, plan = recent_and_old(every_hours=1.0)
    quiet = replace(QUIET, device_mb_per_s=1.0, redate_headroom_fraction=0.0,
                    redate_every_hours=1.0, local_store_gb=100.0)
    arriving = replace(quiet, new_studies_per_day=24.0 * 4, new_study_mb=1.0)  # 4 an hour
    alone = by_name(forecast_strategies(site, plan, params=quiet))["local-first/redate"]
    more = by_name(forecast_strategies(site, plan, params=arriving))["local-first/redate"]
    assert more.redate_rounds == alone.redate_rounds
    # the studies that arrived (4 an hour) are re-dated too, each round after they arrive,
    # as the runner finds them by C-FIND and re-dates them (runner.execute.arrivals)
    assert more.redates > alone.redates + 4 * (alone.redate_rounds - 2)
    assert more.hours > alone.hours


def test_clinicians_open_older_priors_which_are_recalled_from_nearline() -> None:
    studies = [study(f"9.{i}", date(2012, 1, 1) + timedelta(days=i), Location.NEARLINE)
               for i in range(20)]
    studies += [study(f"9.{20 + i}", TODAY - timedelta(days=i), Location.LOCAL)
                for i in range(5)]
    site = profile(throttles={"slow": {"max_concurrent_retrieves": 1,
                                       "min_concurrent_retrieves": 0, "delay_seconds": 3600}},
                   tiering={"order": ["local", "nearline"], "local_store_gb": 10})
    plan = plan_of(site, studies, TODAY)
    reads = replace(QUIET, clinical_reads_per_day=48.0, local_store_gb=10)
    migration_only = _strategy(site, plan, replace(reads, prior_read_share=0.0))
    with_priors = _strategy(site, plan, replace(reads, prior_read_share=0.5))
    assert migration_only.recalls == 20  # each nearline study once, by the migration
    assert with_priors.recalls == 20  # the priors read were recalled before the migration...
    assert with_priors.hours < migration_only.hours  # ...which then finds them local


def _strategy(site: SiteProfile, plan: Plan, params: object) -> object:
    begin = start_of(plan, None)
    assert isinstance(params, type(QUIET))
    return Simulation(build_scenario(plan, begin, params), Strategy("local-first", True)).run()


def test_a_locked_device_s_studies_are_taken_by_the_other_device_as_the_runner_does() -> None:
    devices = [{"id": "wfm1", "ae_title": "WFM1", "host": "10.0.0.1", "port": 104},
               {"id": "wfm2", "ae_title": "WFM2", "host": "10.0.0.1", "port": 105,
                "limits": {"lockup_backlog_mb": 150, "lockup_minutes": 600}}]
    site = profile(source={"name": "Old PACS", "devices": devices, "calling_ae_title": "MIGRATE",
                           "inventory": {"from": "2000-01-01"}, "balance_devices": True},
                   throttles={"pair": {"max_concurrent_retrieves": 2, "delay_seconds": 0}})
    studies = [study(f"6.{i}", date(2015, 1, 1) + timedelta(days=i), Location.LOCAL)
               for i in range(40)]
    plan = plan_of(site, studies, TODAY)
    result = by_name(forecast_strategies(site, plan, params=replace(QUIET, lockup_minutes=600)))[
        "local-first/no-redate"]
    assert result.lockups >= 1 and result.finished
    assert result.hours < 1  # not ten hours: the other device migrated the locked one's studies


def test_each_retrieve_holds_the_device_for_its_latency_before_data_flows() -> None:
    site, plan = recent_and_old()
    params = replace(QUIET, device_mb_per_s=1.0)
    quick = by_name(forecast_strategies(site, plan, params=params))["local-first/no-redate"]
    slow = by_name(forecast_strategies(site, plan, params=replace(
        params, retrieve_latency_seconds=10.0)))["local-first/no-redate"]
    assert slow.hours - quick.hours == pytest.approx(50 * 10 / 3600)  # one at a time


def test_the_expected_inflow_is_new_studies_and_reads_of_priors_not_local() -> None:
    from runner.tiering.clinical import expected_inflow
    from runner.tiering.params import TierParameters

    studies = [study("8.0", date(2015, 1, 1), Location.LOCAL),
               study("8.1", date(2015, 1, 2), Location.LOCAL),
               study("8.2", date(2014, 1, 1), Location.NEARLINE),
               study("8.3", date(2014, 1, 2), Location.OFFLINE),
               study("8.4", TODAY, Location.LOCAL)]
    params = TierParameters(new_studies_per_day=864.0, new_mb_per_day=8640.0,
                            clinical_reads_per_day=86400.0, prior_read_share=0.5)
    # 0.1 MB/s of new studies; a read a second, half of them of a prior, half of the priors
    # (100 MB each) away from the store: 25 MB/s recalled by clinicians
    assert expected_inflow(params, studies, TODAY) == pytest.approx(25.1)


def test_the_model_counts_the_expected_inflow_towards_the_next_round() -> None:
    from runner.tiering.clinical import Clinic, Workload
    from runner.tiering.model import LocalStore
    from runner.tiering.params import TierParameters

    store: LocalStore[int] = LocalStore(100.0, 90.0, 14, TODAY.toordinal())
    store.know(0, 10.0, TODAY.toordinal(), local=True)
    params = TierParameters(redate_every_hours=24.0, redate_headroom_fraction=0.5)
    clinic = Clinic(store, Workload(0.0, 1.0, 0.0), params, [(0, TODAY.toordinal())], 1,
                    True, inflow_mb_per_s=1.0)
    clinic.fire()  # the first round, at the start: the next at 0.5 x (90 - 10) = 40 MB
    clinic.accrue(39.0)
    assert clinic.rounds == 1
    clinic.entered_store(2.0, 39.0)  # a recall by the migration
    assert clinic.rounds == 2


def test_arrivals_faster_than_re_dating_can_follow_leave_the_migration_unfinished() -> None:
    site, plan = recent_and_old(every_hours=1.0)
    # a 10 MB study arrives every second; each re-date takes 10 s of the one device
    flood = replace(QUIET, device_mb_per_s=1.0, redate_headroom_fraction=0.0,
                    redate_every_hours=1.0, local_store_gb=100.0, new_studies_per_day=86400.0,
                    new_mb_per_day=864000.0)
    result = by_name(forecast_strategies(site, plan, params=flood))["local-first/redate"]
    assert not result.finished
    assert result.studies < 50
