"""`pacsmig plan`: take the inventory (CSV or C-FIND), compile the plan, explain it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from runner.execute.peers import check_tls
from runner.inventory.csv_reader import read_inventory_csv
from runner.inventory.exclusions import read_exclusions
from runner.inventory.locations import apply_location_table
from runner.inventory.model import AVAILABILITY_NOTE, Inventory, Location
from runner.plan.compile import compile_plan
from runner.plan.explain import explain, plan_json
from runner.plan.model import Plan
from runner.plan.schedule import schedule_now
from runner.profile.load import LoadedProfile
from runner.profile.models import SiteProfile


def site_today(profile: SiteProfile) -> date:
    """Today's date in the site's time zone."""
    return datetime.now(ZoneInfo(profile.site.timezone)).date()


def take_inventory(profile: SiteProfile, csv_path: Path | None, today: date,
                   since: date | None = None) -> Inventory:
    """The inventory from a CSV file, or live by C-FIND from the source devices (the
    census; with `since`, of studies dated from then on only)."""
    if csv_path is not None:
        inventory = read_inventory_csv(csv_path, [d.id for d in profile.source.devices])
    else:
        inventory = live_inventory(profile, today, since)
    if profile.tiering.location.startswith("csv:"):
        table = Path(profile.tiering.location[4:])
        inventory = _tiers_instead(apply_location_table(inventory, table),
                                   f"tiers from the location table {table}")
    elif profile.tiering.by_date is not None:
        inventory = tiers_by_date(inventory, profile.tiering.by_date)
    return inventory


def _tiers_instead(inventory: Inventory, source: str) -> Inventory:
    """The inventory without the note that InstanceAvailability was not answered (the tiers
    come from `source`), unless some study still has its tier from the inventory."""
    if any("are not in the location table" in note for note in inventory.notes):
        return inventory
    notes = tuple(n for n in inventory.notes if not n.startswith(AVAILABILITY_NOTE))
    return dataclasses.replace(inventory, notes=(*notes, source))


def tiers_by_date(inventory: Inventory, cut_off: date) -> Inventory:
    """Each study nearline when dated before `cut_off`, else local (tiering.by_date)."""
    studies = tuple(dataclasses.replace(
        s, location=Location.NEARLINE if s.sort_date < cut_off else Location.LOCAL)
        for s in inventory.studies)
    notes = tuple(n for n in inventory.notes if not n.startswith(AVAILABILITY_NOTE))
    note = f"tiers by date (tiering.by_date): before {cut_off:%Y-%m-%d} nearline, from it local"
    return dataclasses.replace(inventory, studies=studies, notes=(*notes, note))


def live_inventory(profile: SiteProfile, today: date, since: date | None = None) -> Inventory:
    """The census of the source by C-FIND (see runner.inventory.cfind)."""
    from runner.execute.peers import device_peers, dicom_settings
    from runner.inventory.cfind import CensusRequest, inventory_by_cfind

    query = profile.source.inventory
    request = CensusRequest(
        date_from=query.from_, date_to=query.end_date(today), window_days=query.window_days,
        sweep=query.census == "full", max_results=query.max_results,
        instance_counts=query.instance_counts, modalities=tuple(query.modalities), since=since)
    return inventory_by_cfind(device_peers(profile), profile.source.calling_ae_title,
                              dicom_settings(profile), request)


def build_plan(loaded: LoadedProfile, csv_path: Path | None,
               since: date | None = None) -> Plan:
    """Census and compile: the plan as `run` would execute it today."""
    return _inventory_and_plan(loaded, csv_path, since)[1]


def _inventory_and_plan(loaded: LoadedProfile, csv_path: Path | None,
                        since: date | None = None) -> tuple[Inventory, Plan]:
    profile = loaded.profile
    today = site_today(profile)
    inventory = take_inventory(profile, csv_path, today, since)
    exclude = profile.source.inventory.exclude
    exclusions = read_exclusions(exclude) if exclude is not None else {}
    return inventory, compile_plan(profile, inventory, today, exclusions)


Capabilities = Callable[[SiteProfile, Inventory], tuple[list[str], dict[str, Any]]]


def plan_command(loaded: LoadedProfile, csv_path: Path | None, json_file: Path | None,
                 echo: Callable[[str], object], forecast: bool = False,
                 capabilities: Capabilities | None = None) -> Plan:
    """The dry run: print the explanation (and forecast), write the JSON if asked; with the
    live source, the capability matrix `capabilities` gives (the caller's: it asks the
    peers, which this package does not)."""
    check_tls(loaded.profile)
    inventory, plan = _inventory_and_plan(loaded, csv_path)
    for line in explain(plan):
        echo(line)
    now = datetime.now(ZoneInfo(loaded.profile.site.timezone))
    echo(schedule_now(plan.schedule, now).line())
    document = plan_json(plan)
    if csv_path is None and capabilities is not None:
        lines, document["capabilities"] = capabilities(loaded.profile, inventory)
        for line in lines:
            echo(line)
    if forecast:
        from runner.tiering.forecast import forecast_json, forecast_lines, forecast_strategies

        result = forecast_strategies(loaded.profile, plan,
                                     datetime.now(ZoneInfo(plan.timezone)).replace(tzinfo=None))
        for line in forecast_lines(result):
            echo(line)
        document["forecast"] = forecast_json(result)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        echo(f"Plan JSON written to {json_file}")
    return plan
