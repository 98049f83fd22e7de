"""The census and the plan as every command takes them: the inventory (a CSV file, or live by
C-FIND from the source devices), tiered as the profile says, compiled into the plan with the
rules the command loaded."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from runner.inventory.csv_reader import read_inventory_csv
from runner.inventory.exclusions import read_exclusions
from runner.inventory.locations import tiers_by_date, tiers_from_table
from runner.inventory.model import Inventory
from runner.morph.loaded import LoadedProfile
from runner.plan.compile import compile_plan
from runner.plan.model import Plan
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
        inventory = tiers_from_table(inventory, Path(profile.tiering.location[4:]))
    elif profile.tiering.by_date is not None:
        inventory = tiers_by_date(inventory, profile.tiering.by_date)
    return inventory


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
    return inventory_and_plan(loaded, csv_path, since)[1]


def inventory_and_plan(loaded: LoadedProfile, csv_path: Path | None,
                       since: date | None = None) -> tuple[Inventory, Plan]:
    """The census and the plan compiled from it, with the rules `loaded` holds."""
    profile = loaded.profile
    today = site_today(profile)
    inventory = take_inventory(profile, csv_path, today, since)
    exclude = profile.source.inventory.exclude
    exclusions = read_exclusions(exclude) if exclude is not None else {}
    return inventory, compile_plan(profile, inventory, today, exclusions, rules=loaded.rules)
