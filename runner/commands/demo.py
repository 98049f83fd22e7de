"""`pacsmig demo`: the whole job on loopback, from a simulated legacy PACS to an embedded archive.

The legacy PACS has two devices in front of one store with a local tier and a nearline tier
(runner.sim.demo_site); a device locks up when pushed past the limits the profile gives it
for the forecast (`source.devices[].limits`), so the forecast and the run see the same
device. The demo profile
(`site_profiles/demo.yaml`) is migrated: plan and forecast, run with live progress,
verification, reports. Everything is written under the demo's reports folder, which is
started afresh each time.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from runner.commands.census import build_plan
from runner.execute.run import RunSummary, run_migration
from runner.morph.loaded import LoadedProfile, load_profile
from runner.plan.explain import explain
from runner.plan.model import Plan
from runner.profile.models import SiteProfile
from runner.tiering.model import StoreCounts


class HoldsInstances(Protocol):
    """The embedded archive, as the closing lines read it."""

    def instance_count(self) -> int:
        """How many instances it holds."""

DEMO_PROFILE = Path(__file__).resolve().parents[2] / "site_profiles" / "demo.yaml"


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did, for the closing lines and the tests."""

    summary: RunSummary
    counts: StoreCounts
    recalled_studies: int
    lockups: int
    reports_dir: Path


def demo(studies: int, reports_dir: Path | None, write: Callable[[str], None],
         is_tty: bool) -> int:
    """The demo; exit code 1 when the migration is not complete."""
    return 0 if run_demo(write, is_tty, studies, reports_dir).summary.complete else 1


def run_demo(write: Callable[[str], None], is_tty: bool, studies: int = 60,
             reports_dir: Path | None = None,
             change: Callable[[LoadedProfile], LoadedProfile] | None = None,
             wall_clock: Callable[[ZoneInfo], datetime] = datetime.now) -> DemoResult:
    """Start the simulated PACS and archive, migrate the demo profile, write the reports
    (into the profile's `reports/demo`, or `reports_dir`: the spool and archive go there
    too); `change` alters the demo profile first (`demo --compare`'s strategies);
    `wall_clock` is the schedule's clock (tests set the time of day)."""
    loaded = _in_folder(load_profile(DEMO_PROFILE), reports_dir)
    if change is not None:
        loaded = change(loaded)
    profile = loaded.profile
    _fresh(profile)
    from runner.sim.demo_site import DemoSite  # the simulated peers: pynetdicom, demo only

    site = DemoSite.start(profile, studies, date.today())
    try:
        summary = _migrate(loaded, write, is_tty, wall_clock)
    finally:
        site.stop()
    _reports(loaded, write)
    result = DemoResult(summary, site.archive.counts(), site.archive.recalled_studies(),
                        site.lockups, profile.reports.dir)
    for line in _closing(result, site.destination):
        write(line)
    return result


def _in_folder(loaded: LoadedProfile, folder: Path | None) -> LoadedProfile:
    """The demo profile writing everything under `folder` (None: as the profile says)."""
    if folder is None:
        return loaded
    profile = loaded.profile
    moved = profile.model_copy(update={
        "reports": profile.reports.model_copy(update={"dir": folder / "demo"}),
        "listener": profile.listener.model_copy(update={"spool_dir": folder / "demo" / "spool"}),
    })
    return replace(loaded, profile=moved)


def _fresh(profile: SiteProfile) -> None:
    """Start the demo's folder afresh (only the demo's own folder is removed)."""
    folder = profile.reports.dir
    if folder.name == "demo" and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


def _migrate(loaded: LoadedProfile, write: Callable[[str], None], is_tty: bool,
             wall_clock: Callable[[ZoneInfo], datetime]) -> RunSummary:
    plan = build_plan(loaded, None)
    for line in explain(plan):
        write(line)
    _forecast(loaded.profile, plan, write)
    return run_migration(loaded, plan, None, write, is_tty, wall_clock)


def _reports(loaded: LoadedProfile, write: Callable[[str], None]) -> None:
    from runner.commands.report import report_command

    report_command(loaded, date_from=None, date_to=None, phase=None, write=write)


def _forecast(profile: SiteProfile, plan: Plan, write: Callable[[str], None]) -> None:
    from runner.tiering.forecast import forecast_lines, forecast_strategies

    forecast = forecast_strategies(profile, plan, plan.today)
    for line in forecast_lines(forecast):
        write(line)


def _closing(result: DemoResult, destination: HoldsInstances) -> list[str]:
    c = result.counts
    return [*result.summary.lines(),
            f"Simulated PACS: {c.recalls} recalls ({c.recalled_mb:.1f} MB) of "
            f"{result.recalled_studies} studies from nearline (a retrieve a lock-up lost may "
            f"recall its study again), {c.evictions} studies pushed off the local store, "
            f"{c.recent_evictions} of them clinically recent; {result.lockups} device "
            "lock-ups survived",
            f"Embedded archive holds {destination.instance_count():,} instances",
            f"Results: {result.reports_dir} (ledger.duckdb, reconciliation.csv, signoff.html)"]
