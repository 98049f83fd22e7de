"""The two principles measured on the simulated PACS (its own counters, not the forecast):
local-first with re-dating recalls less and pushes no recent study off the local store,
where oldest-first without re-dating does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import duckdb
import pytest

from runner.commands.census import build_plan
from runner.dicom.peer import Peer
from runner.execute.run import run_migration
from runner.ledger.queries import pilot_timings
from runner.morph.loaded import load_profile
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.pacs import SimArchive, SimDevice, study_mb
from runner.sim.qrscp import QRServer
from runner.tiering.calibrate import calibrate
from runner.tiering.forecast import forecast_strategies
from runner.tiering.model import StoreCounts
from runner.tiering.params import TierParameters
from runner.tiering.simulate import StrategyResult
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
RECALL_SECONDS = 0.4


def hospital() -> list[StudySpec]:
    """14 nearline studies (2010-2019), 12 older local ones, 4 acquired this week."""
    today = date.today()
    specs = synthetic_archive("tiers", 30, date(2010, 1, 1), date(2019, 12, 31),
                              modalities=("CT",))
    days = [date(2010, 1, 1) + timedelta(days=120 * i) for i in range(26)]
    days += [today - timedelta(days=d) for d in (6, 4, 2, 1)]
    return [replace(s, study_date=day, instance_availability="NEARLINE" if i < 14 else None)
            for i, (s, day) in enumerate(zip(specs, days, strict=True))]


def migrate(tmp_path: Path, orthanc: OrthancProcess,
            **sections: Any) -> tuple[StoreCounts, StrategyResult]:
    """Migrate the hospital; the simulator's counters, and the forecast of the same run."""
    specs = hospital()
    tmp_path.mkdir(parents=True, exist_ok=True)
    local_mb = sum(study_mb(s) for s in specs if s.instance_availability is None)
    archive = SimArchive(specs, capacity_mb=local_mb, recent_days=14, today=date.today(),
                         recall_seconds_per_mb=RECALL_SECONDS / study_mb(specs[0]))
    listener_port = free_port()
    server = QRServer("SIMPACS", specs, {"PACSMIG": ("127.0.0.1", listener_port)},
                      behaviour=SimDevice(archive)).start()
    try:
        data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", server.port))],
                            orthanc.peer, listener_port,
                            throttles={"open": {"max_concurrent_retrieves": 2,
                                                "min_concurrent_retrieves": 2}}, **sections)
        data["tiering"].update(local_store_gb=local_mb / 1000, new_studies_per_day=0,
                               clinical_reads_per_day=0)
        loaded = load_profile(write_profile(tmp_path, data))
        plan = build_plan(loaded, None)
        forecast = forecast_strategies(loaded.profile, plan).chosen
        summary = run_migration(loaded, plan, None, lambda _: None, False)
        assert summary.complete, summary.lines()
    finally:
        server.stop()
    return archive.counts(), forecast


def test_local_first_with_redating_recalls_less_and_evicts_no_recent_study(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    oldest_first, oldest_forecast = migrate(
        tmp_path / "oldest", orthanc_factory(aet="DESTA"), tiering={"by_tier": False},
        redate={"recent_days": 0})
    local_first, local_forecast = migrate(
        tmp_path / "local", orthanc_factory(aet="DESTB"),
        tiering={"order": ["local", "nearline"]},
        redate={"recent_days": 14, "every_hours": 1 / 3600})
    assert oldest_first.recent_evictions >= 4
    assert local_first.recent_evictions == 0
    assert local_first.recalls == 14  # each nearline study once, nothing recalled twice
    assert oldest_first.recalls > local_first.recalls

    # The forecast of each run agrees with what the simulator measured: recalls within 10%,
    # the same verdict on recent studies.
    assert oldest_forecast.name == "oldest-first/no-redate"
    assert local_forecast.name == "local-first/redate"
    for measured, forecast in ((oldest_first, oldest_forecast), (local_first, local_forecast)):
        assert abs(forecast.recalls - measured.recalls) <= 0.1 * measured.recalls, (
            forecast, measured)
        assert (forecast.recent_studies_evicted == 0) == (measured.recent_evictions == 0)

    # Calibration from the ledger finds the recall speed the simulator was given (10 %)
    pilot = pilot_timings(tmp_path / "local" / "reports" / "ledger.duckdb")
    calibration = calibrate(TierParameters(), pilot)
    # the simulator holds each study RECALL_SECONDS: its recall speed, in the MB received
    given = median(t.megabytes for t in pilot if t.tier != "local") / RECALL_SECONDS
    assert calibration.measured["nearline_mb_per_s"] == 14
    assert calibration.parameters.nearline_mb_per_s == pytest.approx(given, rel=0.1)


def test_re_dating_on_recalled_volume_keeps_recent_studies_where_a_daily_round_does_not(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    daily, daily_forecast = migrate(
        tmp_path / "daily", orthanc_factory(aet="DESTA"),
        tiering={"order": ["local", "nearline"]},
        redate={"recent_days": 14, "every_hours": 24, "headroom_fraction": 0})
    keeping_up, forecast = migrate(
        tmp_path / "volume", orthanc_factory(aet="DESTB"),
        tiering={"order": ["local", "nearline"]},
        redate={"recent_days": 14, "every_hours": 24})
    assert daily.recent_evictions > 0  # the recalls turned the store over within the day
    assert keeping_up.recent_evictions == 0
    assert keeping_up.recalls == 14
    with duckdb.connect(str(tmp_path / "volume" / "reports" / "ledger.duckdb"),
                        read_only=True) as conn:
        redates = conn.execute("SELECT count(*) FROM retrieves WHERE purpose = 'redate'"
                               ).fetchone()
    assert redates is not None and redates[0] > 4  # more than the first round's four
    # the model agrees: the same verdict on recent studies, both ways
    assert daily_forecast.recent_studies_evicted > 0
    assert forecast.recent_studies_evicted == 0
