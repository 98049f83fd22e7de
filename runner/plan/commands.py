"""`pacsmig plan`: take the inventory (CSV or C-FIND), compile the plan, explain it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from runner.inventory.csv_reader import read_inventory_csv
from runner.inventory.locations import apply_location_table
from runner.inventory.model import Inventory, Location
from runner.plan.compile import compile_plan
from runner.plan.explain import explain, plan_json
from runner.plan.model import Plan
from runner.plan.schedule import schedule_now
from runner.profile.load import LoadedProfile
from runner.profile.models import SiteProfile
from runner.profile.peers import check_tls


def site_today(profile: SiteProfile) -> date:
    """Today's date in the site's time zone."""
    return datetime.now(ZoneInfo(profile.site.timezone)).date()


def take_inventory(profile: SiteProfile, csv_path: Path | None, today: date) -> Inventory:
    """The inventory from a CSV file, or live by C-FIND from the source devices."""
    if csv_path is not None:
        inventory = read_inventory_csv(csv_path, [d.id for d in profile.source.devices])
    else:
        inventory = live_inventory(profile, today)
    if profile.tiering.location.startswith("csv:"):
        table = Path(profile.tiering.location[4:])
        inventory = _tiers_instead(apply_location_table(inventory, table),
                                   f"tiers from the location table {table}")
    elif profile.tiering.by_date is not None:
        inventory = tiers_by_date(inventory, profile.tiering.by_date)
    return inventory


_AVAILABILITY_NOTE = "InstanceAvailability not answered"


def _tiers_instead(inventory: Inventory, source: str) -> Inventory:
    """The inventory without the note that InstanceAvailability was not answered (the tiers
    come from `source`), unless some study still has its tier from the inventory."""
    if any("are not in the location table" in note for note in inventory.notes):
        return inventory
    notes = tuple(n for n in inventory.notes if not n.startswith(_AVAILABILITY_NOTE))
    return dataclasses.replace(inventory, notes=(*notes, source))


def tiers_by_date(inventory: Inventory, cut_off: date) -> Inventory:
    """Each study nearline when dated before `cut_off`, else local (tiering.by_date)."""
    studies = tuple(dataclasses.replace(
        s, location=Location.NEARLINE if s.study_date < cut_off else Location.LOCAL)
        for s in inventory.studies)
    notes = tuple(n for n in inventory.notes if not n.startswith(_AVAILABILITY_NOTE))
    note = f"tiers by date (tiering.by_date): before {cut_off:%Y-%m-%d} nearline, from it local"
    return dataclasses.replace(inventory, studies=studies, notes=(*notes, note))


def live_inventory(profile: SiteProfile, today: date) -> Inventory:
    """C-FIND the source devices by date windows (see runner.inventory.cfind)."""
    from runner.inventory.cfind import inventory_by_cfind
    from runner.profile.peers import device_peers, dicom_settings

    query = profile.source.inventory
    return inventory_by_cfind(
        device_peers(profile), profile.source.calling_ae_title, dicom_settings(profile),
        query.from_, query.end_date(today), query.window_days, query.modalities,
        max_results=query.max_results)


def build_plan(loaded: LoadedProfile, csv_path: Path | None) -> Plan:
    """Inventory and compile: the plan as `run` would execute it today."""
    today = site_today(loaded.profile)
    inventory = take_inventory(loaded.profile, csv_path, today)
    return compile_plan(loaded.profile, inventory, today)


def plan_command(loaded: LoadedProfile, csv_path: Path | None, json_file: Path | None,
                 echo: Callable[[str], object], forecast: bool = False) -> Plan:
    """The dry run: print the explanation (and forecast), write the JSON if asked."""
    check_tls(loaded.profile)
    plan = build_plan(loaded, csv_path)
    for line in explain(plan):
        echo(line)
    now = datetime.now(ZoneInfo(loaded.profile.site.timezone))
    echo(schedule_now(plan.schedule, now).line())
    document = plan_json(plan)
    if forecast:
        from runner.tiering.forecast import forecast_json, forecast_lines, forecast_strategies

        result = forecast_strategies(loaded.profile, plan)
        for line in forecast_lines(result):
            echo(line)
        document["forecast"] = forecast_json(result)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        echo(f"Plan JSON written to {json_file}")
    return plan
