"""`pacsmig demo`: the whole job on loopback, from a simulated legacy PACS to an embedded archive.

The legacy PACS has two devices in front of one store with a local tier and a nearline tier
(runner.sim.pacs); the second device locks up when pushed past the limits the profile gives
it for the forecast (`source.devices[].limits`), so the forecast and the run see the same
device. The demo profile
(`site_profiles/demo.yaml`) is migrated: plan and forecast, run with live progress,
verification, reports. Everything is written under the demo's reports folder, which is
started afresh each time.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

from runner.dicom.peer import Peer
from runner.execute.run import RunSummary, run_migration
from runner.plan.commands import build_plan
from runner.plan.explain import explain
from runner.plan.model import Plan
from runner.profile.load import LoadedProfile, load_profile
from runner.profile.models import Device, SiteProfile
from runner.sim.destination import EmbeddedArchive
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.pacs import Lockup, SimArchive, SimDevice, study_mb
from runner.sim.qrscp import QRServer
from runner.tiering.model import StoreCounts

DEMO_PROFILE = Path(__file__).resolve().parents[2] / "site_profiles" / "demo.yaml"
RECENT_STUDIES = 8
# A recall takes this long per MB (the demo's stand-in for a cloud archive's hours).
RECALL_SECONDS_PER_MB = 1.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did, for the closing lines and the tests."""

    summary: RunSummary
    counts: StoreCounts
    recalled_studies: int
    lockups: int
    reports_dir: Path


def demo_archive(count: int, today: date, recent_days: int,
                 local_mb: float) -> list[StudySpec]:
    """`count` studies since 2012, the last few clinically recent; the newest are local, as
    many as the local store holds (`local_mb`), the others nearline."""
    older = synthetic_archive("demo", count - RECENT_STUDIES, date(2012, 1, 1),
                              today - timedelta(days=recent_days + 30),
                              modalities=("CT", "MR", "CR", "DX", "US", "MG"),
                              series_count=2, instances_per_series=3)
    recent = synthetic_archive("demo-recent", RECENT_STUDIES, today - timedelta(days=10), today,
                               modalities=("CT", "CR", "MR"), series_count=2,
                               instances_per_series=3)
    specs = [replace(s, rows=256, cols=256, bits_allocated=16) for s in older + recent]
    out: list[StudySpec] = []
    for spec in reversed(specs):
        local_mb -= study_mb(spec)
        out.append(spec if local_mb >= 0 else replace(spec, instance_availability="NEARLINE"))
    return out[::-1]


def run_demo(write: Callable[[str], None], is_tty: bool, studies: int = 60,
             reports_dir: Path | None = None) -> DemoResult:
    """Start the simulated PACS and archive, migrate the demo profile, write the reports
    (into the profile's `reports/demo`, or `reports_dir`: the spool and archive go there
    too)."""
    loaded = _in_folder(load_profile(DEMO_PROFILE), reports_dir)
    profile = loaded.profile
    _fresh(profile)
    today = date.today()
    capacity_mb = profile.tiering.local_store_gb * 1000
    specs = demo_archive(studies, today, profile.redate.recent_days, capacity_mb)
    archive = SimArchive(specs, capacity_mb, profile.redate.recent_days, today,
                         RECALL_SECONDS_PER_MB)
    devices = [SimDevice(archive, _lockup(d)) for d in profile.source.devices]
    servers, destination = _start(profile, specs, devices)
    try:
        summary = _migrate(loaded, write, is_tty)
    finally:
        for server in servers:
            server.stop()
        destination.stop()
    _reports(loaded, write)
    result = DemoResult(summary, archive.counts(), archive.recalled_studies(),
                        sum(d.lockups for d in devices), profile.reports.dir)
    for line in _closing(result, destination):
        write(line)
    return result


def _lockup(device: Device) -> Lockup | None:
    """The device's lock-up as the profile states its limits for the forecast (none stated:
    a device that does not lock up)."""
    limits = device.limits
    if limits.lockup_backlog_mb is None:
        return None
    minutes = limits.lockup_minutes if limits.lockup_minutes is not None else 1.0
    return Lockup(reboot_seconds=minutes * 60.0, backlog_mb=limits.lockup_backlog_mb)


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


def _start(profile: SiteProfile, specs: list[StudySpec],
           devices: list[SimDevice]) -> tuple[list[QRServer], EmbeddedArchive]:
    listener = (profile.listener.host, profile.listener.port)
    moves = {profile.listener.ae_title: listener}
    servers = [QRServer(d.ae_title, specs, moves, behaviour=b, host=d.host, port=d.port).start()
               for d, b in zip(profile.source.devices, devices, strict=True)]
    dest = profile.destination
    archive = EmbeddedArchive(dest.ae_title, profile.reports.dir / "archive", dest.port,
                              {profile.source.calling_ae_title:
                               Peer(profile.listener.ae_title, *listener)}).start()
    return servers, archive


def _migrate(loaded: LoadedProfile, write: Callable[[str], None], is_tty: bool) -> RunSummary:
    plan = build_plan(loaded, None)
    for line in explain(plan):
        write(line)
    _forecast(loaded.profile, plan, write)
    return run_migration(loaded, plan, None, write, is_tty)


def _reports(loaded: LoadedProfile, write: Callable[[str], None]) -> None:
    from runner.report.commands import report_command

    report_command(loaded, date_from=None, date_to=None, phase=None, write=write)


def _forecast(profile: SiteProfile, plan: Plan, write: Callable[[str], None]) -> None:
    from runner.tiering.forecast import forecast_lines, forecast_strategies

    forecast = forecast_strategies(profile, plan, plan.today)
    for line in forecast_lines(forecast):
        write(line)


def _closing(result: DemoResult, destination: EmbeddedArchive) -> list[str]:
    c = result.counts
    return [*result.summary.lines(),
            f"Simulated PACS: {c.recalls} recalls ({c.recalled_mb:.1f} MB) of "
            f"{result.recalled_studies} studies from nearline (a retrieve a lock-up lost may "
            f"recall its study again), {c.evictions} studies pushed off the local store, "
            f"{c.recent_evictions} of them clinically recent; {result.lockups} device "
            "lock-ups survived",
            f"Embedded archive holds {destination.instance_count():,} instances",
            f"Results: {result.reports_dir} (ledger.duckdb, reconciliation.csv, signoff.html)"]
