"""The forecast: strategies run through the tier model with the profile's throttles and schedule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from runner.execute.throttle import slot_matches
from runner.inventory.model import Inventory, Location, Study
from runner.plan.compile import compile_plan
from runner.plan.model import Plan
from runner.profile.models import SiteProfile
from runner.tiering.forecast import Forecast, forecast_json, forecast_lines, forecast_strategies
from runner.tiering.params import TierParameters
from runner.tiering.scenario import build_scenario, start_of
from runner.tiering.simulate import STUCK_AFTER, Simulation
from runner.tiering.strategy import Strategy

LONDON = ZoneInfo("Europe/London")
QUIET = TierParameters(new_studies_per_day=0, clinical_reads_per_day=0, low_water_fraction=1.0)
ONE_AT_A_TIME = {"max_concurrent_retrieves": 1, "min_concurrent_retrieves": 1,
                 "delay_seconds": 0}


def profile(**sections: Any) -> SiteProfile:
    """A valid profile with one source device and one throttle at all times, with overrides."""
    data: dict[str, Any] = {
        "version": 1,
        "site": {"id": "test-site", "name": "Test", "timezone": "Europe/London"},
        "listener": {"ae_title": "MIGRATE", "port": 11112, "spool_dir": "spool"},
        "source": {"name": "Old PACS",
                   "devices": [{"id": "pacs1", "ae_title": "PACS1", "host": "10.0.0.1",
                                "port": 104}],
                   "calling_ae_title": "MIGRATE", "inventory": {"from": "2000-01-01"}},
        "destination": {"name": "VNA", "ae_title": "VNA", "host": "10.0.0.2", "port": 104},
        "throttles": {"steady": ONE_AT_A_TIME},
        "tiering": {"order": ["local", "nearline"]},
        "redate": {"recent_days": 14, "every_hours": 6},
        "reports": {"dir": "reports"},
    }
    data.update(sections)
    return SiteProfile.model_validate(data)


def study(uid: str, day: date, location: Location, mb: float = 100.0) -> Study:
    return Study(uid, day, "CT", 10, mb, location)


def plan_of(site: SiteProfile, studies: Sequence[Study], today: date) -> Plan:
    return compile_plan(site, Inventory(tuple(studies), "test"), today)


def by_name(forecast: Forecast) -> Mapping[str, Any]:
    return {r.name: r for r in forecast.strategies}


# --- the seed's example, through the whole forecast --------------------------------------

SEED_TODAY = date(2013, 12, 31)
SEED_STUDIES = [study(f"1.{year}", date(year, 12, 20),
                      Location.LOCAL if year >= 2012 else Location.NEARLINE)
                for year in range(2007, 2014)]


def test_seed_example_oldest_first_recalls_700_mb_local_first_only_the_500_mb_on_nearline() -> None:
    site = profile(tiering={"order": ["local", "nearline"], "local_store_gb": 0.2})
    plan = plan_of(site, SEED_STUDIES, SEED_TODAY)
    params = replace(QUIET, local_store_gb=0.2)
    results = by_name(forecast_strategies(site, plan, params=params))
    assert results["oldest-first/no-redate"].recalled_gb == 0.7
    assert results["oldest-first/no-redate"].recalls == 7
    assert results["local-first/no-redate"].recalled_gb == 0.5
    assert results["local-first/no-redate"].recalls == 5
    assert results["local-first/redate"].profile_choice
    # one at a time at 20 MB/s, plus 10 MB/s for each recall: 7 x 5 s + 5 x 10 s
    assert abs(results["local-first/no-redate"].hours - 85 / 3600) < 1e-9


# --- local-first with re-dating against oldest-first without -----------------------------

SLOW = {"max_concurrent_retrieves": 1, "min_concurrent_retrieves": 0, "delay_seconds": 3600}


def slow_migration() -> tuple[SiteProfile, Plan]:
    """1 GB store full of 9 old local studies and 1 recent one; 3 GB of older studies on
    nearline; one retrieve an hour, so that a re-date every 6 h comes before 6 recalls."""
    today = date(2026, 11, 27)
    studies = [study(f"2.{i}", date(2010, 1, 1) + timedelta(days=i), Location.NEARLINE)
               for i in range(30)]
    studies += [study(f"3.{i}", date(2015 + i, 6, 1), Location.LOCAL) for i in range(9)]
    studies.append(study("4.1", today - timedelta(days=3), Location.LOCAL))
    site = profile(throttles={"slow": SLOW}, tiering={"order": ["local", "nearline"],
                                                      "local_store_gb": 1})
    return site, plan_of(site, studies, today)


def test_local_first_with_redate_recalls_less_and_evicts_no_recent_study() -> None:
    site, plan = slow_migration()
    params = replace(QUIET, local_store_gb=1, low_water_fraction=0.9)
    results = by_name(forecast_strategies(site, plan, params=params))
    naive, chosen = results["oldest-first/no-redate"], results["local-first/redate"]
    assert naive.recent_studies_evicted > 0
    assert chosen.recent_studies_evicted == 0
    assert chosen.recalled_gb == 3.0  # the nearline studies, once each
    assert naive.recalled_gb > chosen.recalled_gb
    assert chosen.redates > 0 and naive.redates == 0


def test_without_redating_the_recent_study_is_pushed_off_in_the_nearline_phase() -> None:
    site, plan = slow_migration()
    params = replace(QUIET, local_store_gb=1, low_water_fraction=0.9)
    results = by_name(forecast_strategies(site, plan, params=params))
    assert results["local-first/no-redate"].recent_studies_evicted == 1


# --- dead time, schedule, hourly break -----------------------------------------------------

def busy_hours() -> tuple[SiteProfile, Plan]:
    """200 local studies of 100 MB at 1 MB/s, two at a time with a 10 s delay: ~3 hours."""
    site = profile(throttles={"pair": {"max_concurrent_retrieves": 2,
                                       "min_concurrent_retrieves": 1, "delay_seconds": 10}})
    today = date(2026, 11, 27)
    studies = [study(f"5.{i}", date(2020, 1, 1) + timedelta(days=i), Location.LOCAL)
               for i in range(200)]
    return site, plan_of(site, studies, today)


def test_the_hourly_break_adds_dead_time_that_the_delay_formula_does_not() -> None:
    site, plan = busy_hours()
    params = replace(QUIET, device_mb_per_s=1.0)
    results = by_name(forecast_strategies(site, plan, params=params))
    assert results["local-first/redate"].dead_time_hours == 0
    with_break = results["local-first/redate/hourly-break"]
    assert with_break.finished and with_break.hours > 1
    assert with_break.dead_time_hours > 0.1


def test_no_retrieve_starts_in_the_last_ten_minutes_of_an_hour_with_the_hourly_break() -> None:
    site, plan = busy_hours()
    starts = recorded_starts(site, plan, Strategy("local-first", True, hourly_break=True),
                             replace(QUIET, device_mb_per_s=1.0), datetime(2026, 11, 27))
    assert len(starts) == 200
    minutes = {when.minute for when in starts}
    assert minutes and max(minutes) < 50
    assert len({when.hour for when in starts}) >= 2


def recorded_starts(site: SiteProfile, plan: Plan, strategy: Strategy,
                    params: TierParameters, start: datetime) -> list[datetime]:
    begin = start_of(plan, start)
    simulation = Simulation(build_scenario(plan, begin, params), strategy, record_starts=True)
    simulation.run()
    assert simulation.starts is not None
    return [begin + timedelta(seconds=when) for when, _ in simulation.starts]


def test_no_retrieve_starts_while_the_schedule_pauses_the_device() -> None:
    site, _ = busy_hours()
    site = profile(throttles=dict(site.throttles),
                   schedule=[{"days": ["mon", "tue", "wed", "thu", "fri"],
                              "hours": "08:00-09:00", "throttle": "pair"}])
    plan = plan_of(site, busy_hours()[1].phases[0].studies, date(2026, 11, 27))
    saturday = datetime(2026, 11, 28)
    starts = recorded_starts(site, plan, Strategy("local-first", False),
                             replace(QUIET, device_mb_per_s=1.0), saturday)
    assert len(starts) == 200
    assert all(slot_matches(plan.schedule[0], when.astimezone(LONDON)) for when in starts)
    assert starts[0] == datetime(2026, 11, 30, 8, 0, tzinfo=LONDON)  # Monday 08:00
    result = by_name(forecast_strategies(site, plan, saturday,
                                         replace(QUIET, device_mb_per_s=1.0)))
    assert result["local-first/no-redate"].dead_time_hours >= 56  # Sat 00:00 - Mon 08:00


def test_a_schedule_that_never_matches_gives_an_unfinished_forecast() -> None:
    site, plan = busy_hours()
    paused = replace(plan, schedule=())  # no entry matches: paused at all times
    forecast = forecast_strategies(site, paused, params=QUIET)
    result = forecast.strategies[0]
    assert not result.finished and result.studies == 0
    assert "(unfinished)" in "\n".join(forecast_lines(forecast))


# --- determinism, the profile's choice, output --------------------------------------------

def busy_hospital() -> tuple[SiteProfile, Plan]:
    """Old studies on nearline, recent ones local, a store just big enough; clinicians
    reading and new studies arriving at the inventory's recent rate."""
    today = date(2026, 11, 27)
    studies = [study(f"6.{i}", today - timedelta(days=3000 - 9 * i),
                     Location.NEARLINE if i < 200 else Location.LOCAL, 50.0 + i % 7)
               for i in range(300)]
    studies += [study(f"7.{i}", today - timedelta(days=i % 60), Location.LOCAL, 40.0)
                for i in range(120)]
    return profile(), plan_of(profile(), studies, today)


def test_same_inputs_give_the_same_forecast() -> None:
    site, plan = busy_hospital()
    params = TierParameters(local_store_gb=5, device_mb_per_s=0.5)
    first = forecast_strategies(site, plan, params=params)
    assert first.workload.reads_per_day > 0 and first.workload.new_studies_per_day > 0
    assert forecast_strategies(site, plan, params=params) == first
    assert forecast_json(forecast_strategies(site, plan, params=params)) == forecast_json(first)


def test_new_study_rate_defaults_to_the_inventorys_last_90_days() -> None:
    site, plan = busy_hospital()
    workload = forecast_strategies(site, plan).workload
    assert workload.new_studies_per_day == 120 / 90  # the others are older than 300 days
    assert workload.new_study_mb == pytest.approx(40.0)
    assert workload.reads_per_day == workload.new_studies_per_day


def test_the_profiles_own_strategy_is_marked_and_added_when_not_standard() -> None:
    site, plan = busy_hospital()
    assert forecast_strategies(site, plan).chosen.name == "local-first/redate"
    other = profile(tiering={"order": ["nearline", "local"]}, redate={"recent_days": 0})
    forecast = forecast_strategies(other, plan_of(other, plan.phases[0].studies, plan.today))
    assert [r.name for r in forecast.strategies][-1] == "nearline-first/no-redate"
    assert forecast.chosen.name == "nearline-first/no-redate"
    assert sum(r.profile_choice for r in forecast.strategies) == 1
    naive = profile(tiering={"by_tier": False}, redate={"recent_days": 0})
    forecast = forecast_strategies(naive, plan_of(naive, plan.phases[0].studies, plan.today))
    assert len(forecast.strategies) == 4
    assert forecast.chosen.name == "oldest-first/no-redate"
    assert forecast_lines(forecast)[-2].startswith("The profile's strategy is oldest-first")


def test_forecast_json_has_the_spec_shape() -> None:
    site, plan = busy_hospital()
    document = forecast_json(forecast_strategies(site, plan, params=QUIET))
    names = [s["name"] for s in document["strategies"]]
    assert names == ["oldest-first/no-redate", "local-first/no-redate", "local-first/redate",
                     "local-first/redate/hourly-break"]
    for entry in document["strategies"]:
        assert {"name", "hours", "recalled_gb", "recent_studies_evicted", "dead_time_hours",
                "redates"} <= entry.keys()
        assert isinstance(entry["hours"], float) and isinstance(entry["recalled_gb"], float)
    defaults = forecast_json(forecast_strategies(site, plan, params=TierParameters()))
    assert defaults["assumptions"]["clinical_reads_per_day"] == round(120 / 90, 3)  # as used
    assert defaults["assumptions"]["device_mb_per_s"] == TierParameters().device_mb_per_s


def test_forecast_lines_show_every_strategy_and_what_the_profile_saves() -> None:
    site, plan = slow_migration()
    params = replace(QUIET, local_store_gb=1, low_water_fraction=0.9)
    lines = forecast_lines(forecast_strategies(site, plan, params=params))
    text = "\n".join(lines)
    assert "* " in text and "local-first/redate/hourly-break" in text
    assert lines[-2] == ("Against oldest-first/no-redate (4.0 GB recalled, 1 recent study "
                         "pushed off), the profile's strategy (local-first/redate) recalls "
                         "1.0 GB less from nearline and pushes 1 fewer recent study off the "
                         "local store.")


def test_parameters_come_from_the_profile_with_documented_defaults() -> None:
    site = profile(tiering={"local_store_gb": 123}, redate={"recent_days": 0,
                                                           "every_hours": 3})
    params = TierParameters.from_profile(site)
    assert params.local_store_gb == 123 and params.redate_every_hours == 3
    assert params.recent_days == TierParameters().recent_days  # re-dating off: still 14
    assert params.low_water_fraction == TierParameters().low_water_fraction


def test_parameters_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="device_mb_per_s > 0, 0 < break_minute < 60"):
        TierParameters(device_mb_per_s=0, break_minute=60)


def test_new_studies_without_history_take_the_default_size() -> None:
    site = profile()
    old = [study("8.1", date(2001, 1, 1), Location.LOCAL)]
    params = TierParameters(new_studies_per_day=10)
    workload = forecast_strategies(site, plan_of(site, old, date(2026, 11, 27)),
                                   params=params).workload
    assert workload.new_studies_per_day == 10 and workload.new_study_mb == params.new_study_mb


def test_durations_read_in_the_unit_that_fits() -> None:
    from runner.tiering.forecast import duration_text

    assert duration_text(0) == "0"
    assert duration_text(0.0001) == "<1 s"
    assert duration_text(30 / 3600) == "30 s"
    assert duration_text(0.004) == "14 s"
    assert duration_text(0.25) == "15 min"
    assert duration_text(1.5) == "90 min"
    assert duration_text(12.34) == "12.3 h"
    assert duration_text(1234.5) == "1,234 h"


# --- devices that saturate and lock up -----------------------------------------------------

def large_studies(delay: str | float, most: int = 5,
                  count: int = 120) -> tuple[SiteProfile, Plan]:
    """`count` local CT studies of 200 to 900 MB on one device, `most` at a time."""
    site = profile(throttles={"steady": {"max_concurrent_retrieves": most,
                                         "min_concurrent_retrieves": 1,
                                         "delay_seconds": delay}})
    today = date(2026, 11, 27)
    studies = [study(f"8.{i}", date(2018, 1, 1) + timedelta(days=i), Location.LOCAL,
                     200.0 + (i * 137) % 700) for i in range(count)]
    return site, plan_of(site, studies, today)


def test_the_devices_rate_is_shared_by_its_retrieves() -> None:
    site, plan = large_studies(0, most=4)  # four at once, each alone at 20 MB/s
    alone = by_name(forecast_strategies(site, plan, params=replace(
        QUIET, device_total_mb_per_s=80.0, lockup_backlog_mb=1e9)))
    shared = by_name(forecast_strategies(site, plan, params=replace(
        QUIET, device_total_mb_per_s=40.0, lockup_backlog_mb=1e9)))
    total_mb = sum(s.estimated_mb for s in plan.phases[0].studies)
    assert alone["local-first/redate"].hours == pytest.approx(total_mb / 80 / 3600, rel=0.02)
    assert shared["local-first/redate"].hours == pytest.approx(total_mb / 40 / 3600, rel=0.02)


def test_a_device_asked_for_more_than_its_backlog_locks_up_and_its_retrieves_are_lost() -> None:
    site, plan = large_studies(0)  # five large studies asked at once: overloaded
    result = by_name(forecast_strategies(site, plan, params=QUIET))["local-first/redate"]
    assert result.finished and result.studies == 120  # each lost retrieve asked again
    assert result.lockups > 0
    assert result.locked_hours == pytest.approx(result.lockups * QUIET.lockup_minutes / 60)
    assert result.dead_time_hours >= result.locked_hours * 0.99  # one device: all dead


def test_a_device_that_locks_up_each_time_it_is_back_never_finishes() -> None:
    site, plan = large_studies(0, most=8)  # twice the backlog asked at once, again and again
    forecast = forecast_strategies(site, plan, params=QUIET)
    result = by_name(forecast)["local-first/redate"]
    assert not result.finished and result.lockups == STUCK_AFTER
    assert "(unfinished)" in "\n".join(forecast_lines(forecast))


def test_the_hourly_break_pays_for_its_bursts_where_the_size_delay_does_not() -> None:
    site, plan = large_studies("study_mb / 40", count=600)  # the next when the last drained
    forecast = forecast_strategies(site, plan, params=QUIET)
    results = by_name(forecast)
    formula, hourly = results["local-first/redate"], results["local-first/redate/hourly-break"]
    assert formula.finished and hourly.finished
    assert formula.lockups == 0 and formula.dead_time_hours == 0
    assert hourly.lockups > 0
    assert hourly.hours > formula.hours + hourly.lockups * QUIET.lockup_minutes / 60 * 0.9
    lines = "\n".join(forecast_lines(forecast))
    assert "lock-ups" in lines and "WARNING" not in lines
    assert forecast_json(forecast)["strategies"][3]["lockups"] == hourly.lockups


def test_a_profile_that_locks_its_device_up_is_warned() -> None:
    site, plan = large_studies(0)
    lines = "\n".join(forecast_lines(forecast_strategies(site, plan, params=QUIET)))
    assert "WARNING: the profile's throttles lock a device up" in lines


def test_a_device_of_the_profile_may_bear_more_than_the_default() -> None:
    site, plan = large_studies(0)
    data = site.model_dump(by_alias=True, mode="json", exclude_none=True)
    data["source"]["devices"][0]["limits"] = {"lockup_backlog_mb": 10000}
    sturdy = SiteProfile.model_validate(data)
    sturdy_plan = plan_of(sturdy, [s for p in plan.phases for s in p.studies], plan.today)
    assert by_name(forecast_strategies(site, plan, params=QUIET))[
        "local-first/redate"].lockups > 0
    assert by_name(forecast_strategies(sturdy, sturdy_plan, params=QUIET))[
        "local-first/redate"].lockups == 0


def test_a_small_store_and_small_recalls_read_in_megabytes() -> None:
    site = profile(tiering={"order": ["local", "nearline"], "local_store_gb": 0.02})
    plan = plan_of(site, [study(f"9.{year}", date(year, 6, 1), Location.NEARLINE
                                if year < 2012 else Location.LOCAL, mb=0.8)
                          for year in range(2005, 2014)], SEED_TODAY)
    lines = forecast_lines(forecast_strategies(site, plan, params=replace(
        QUIET, local_store_gb=0.02)))
    text = "\n".join(lines)
    assert "local store 20.0 MB" in text and "recalled MB" in text
    assert "0 GB" not in text and "0.0 GB" not in text
    assert "(5.6 MB recalled" in lines[-2]


def fast_turnover() -> tuple[SiteProfile, Plan]:
    """The slow migration's store and studies, retrieved one after the other without a
    pause: the 1 GB store turns over in minutes, re-dating comes every 6 hours."""
    _, plan = slow_migration()
    fast = profile(throttles={"steady": ONE_AT_A_TIME},
                   tiering={"order": ["local", "nearline"], "local_store_gb": 1})
    return fast, plan_of(fast, [s for p in plan.phases for s in p.studies], plan.today)


def test_re_dating_on_recalled_volume_keeps_up_where_every_hours_alone_does_not() -> None:
    site, plan = fast_turnover()
    params = replace(QUIET, local_store_gb=1, low_water_fraction=0.9)
    timed = by_name(forecast_strategies(site, plan, params=replace(
        params, redate_headroom_fraction=0.0)))["local-first/redate"]
    keeping_up = by_name(forecast_strategies(site, plan, params=params))["local-first/redate"]
    assert timed.hours < 1  # the store turned over long before the next 6-hourly round
    assert timed.recent_studies_evicted == 1
    assert keeping_up.recent_studies_evicted == 0
    assert keeping_up.redates > timed.redates
    assert keeping_up.turnover_hours is not None and keeping_up.turnover_hours < 1
    warned = "\n".join(forecast_lines(forecast_strategies(site, plan, params=replace(
        params, redate_headroom_fraction=0.0))))
    assert "WARNING: every_hours alone cannot protect recent studies" in warned
    kept = "\n".join(forecast_lines(forecast_strategies(site, plan, params=params)))
    assert "rounds also start on recalled volume" in kept and "WARNING" not in kept


def test_the_profile_sets_how_early_re_dating_keeps_up() -> None:
    site = profile(redate={"recent_days": 14, "every_hours": 6, "headroom_fraction": 0.25})
    assert TierParameters.from_profile(site).redate_headroom_fraction == 0.25


def test_the_plan_starts_a_re_date_round_after_a_share_of_the_stores_headroom() -> None:
    _, plan = slow_migration()  # 1 GB store, 0.9 low water, one recent study of 100 MB
    assert plan.redate.volume_mb == pytest.approx((900 - 100) * 0.5)
    off = profile(throttles={"slow": SLOW}, redate={"recent_days": 14, "every_hours": 6,
                                                    "headroom_fraction": 0},
                  tiering={"order": ["local", "nearline"], "local_store_gb": 1})
    assert plan_of(off, [s for p in plan.phases for s in p.studies],
                   plan.today).redate.volume_mb is None
