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
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from runner.commands.census import build_plan
from runner.execute.run import RunSummary, run_migration
from runner.ledger import LEDGER_FILENAME
from runner.morph.accession import masked
from runner.morph.loaded import LoadedProfile, load_profile
from runner.plan.explain import explain
from runner.plan.model import Plan
from runner.profile.models import SiteProfile
from runner.tiering.model import StoreCounts

if TYPE_CHECKING:
    from runner.sim.demo_site import DemoSite
    from runner.sim.ris import SimRis


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
    ris = _ris(profile, site, write)
    try:
        summary = _migrate(loaded, write, is_tty, wall_clock)
    finally:
        if ris is not None:
            ris.stop()
        site.stop()
    _reports(loaded, write)
    result = DemoResult(summary, site.archive.counts(), site.archive.recalled_studies(),
                        site.lockups, profile.reports.dir)
    for line in _closing(result, site.destination) + _priority_lines(profile, ris):
        write(line)
    return result


def _ris(profile: SiteProfile, site: DemoSite, write: Callable[[str], None]) -> SimRis | None:
    """The simulated RIS, booking the demo's patient once a tenth of the instances are at
    the destination (none without `priority.hl7`)."""
    section = profile.priority.hl7
    if section is None:
        return None
    from runner.sim.demo_site import PRIORS_PATIENT
    from runner.sim.ris import SimRis

    total = site.instances
    host = "127.0.0.1" if section.host == "0.0.0.0" else section.host

    def ready() -> bool:
        if site.destination.instance_count() < total // 10:
            return False
        write(f"Priority lane: the simulated RIS sends an HL7 order (ORM^O01) for patient "
              f"{masked(PRIORS_PATIENT)}, booked tomorrow, with "
              f"{site.destination.instance_count():,} of {total:,} instances migrated")
        return True

    return SimRis(host, section.port, PRIORS_PATIENT, ready).start()


def _priority_lines(profile: SiteProfile, ris: SimRis | None) -> list[str]:
    """What the lane did with the demo's order, from the ledger."""
    if ris is None:
        return []
    if not ris.ack:
        return [f"Priority lane: the order was not answered ({ris.problem or 'not sent'})"]
    from runner.ledger.priority_queries import ledger_request_rows, overtaken

    path = profile.reports.dir / LEDGER_FILENAME
    lines = [f"Priority lane: {row.trigger} {row.event} for patient {row.patient_masked}: "
             f"{row.to_move} priors to move, {row.verified} verified; first retrieve "
             f"{_seconds(row.first_retrieve_s)} and every prior verified "
             f"{_seconds(row.verified_s)} after the order (ACK {ris.ack})"
             for row in ledger_request_rows(path)]
    positions, ahead = overtaken(path)
    if positions:
        lines.append(f"  the priors it moved ahead came {', '.join(str(p) for p in positions)}"
                     f" in the run, ahead of {ahead} studies the plan put before them")
    return lines


def _seconds(value: float | None) -> str:
    return "not yet" if value is None else f"{value:.1f} s"


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
