"""`pacsmig plan`: take the inventory (CSV or C-FIND), compile the plan, explain it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from runner.inventory.csv_reader import read_inventory_csv
from runner.inventory.locations import apply_location_table
from runner.inventory.model import Inventory
from runner.plan.compile import compile_plan
from runner.plan.explain import explain, plan_json
from runner.plan.model import Plan
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
        inventory = apply_location_table(inventory, Path(profile.tiering.location[4:]))
    return inventory


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
    return _inventory_and_plan(loaded, csv_path)[1]


def _inventory_and_plan(loaded: LoadedProfile, csv_path: Path | None) -> tuple[Inventory, Plan]:
    today = site_today(loaded.profile)
    inventory = take_inventory(loaded.profile, csv_path, today)
    return inventory, compile_plan(loaded.profile, inventory, today)


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
    document = plan_json(plan)
    if csv_path is None and capabilities is not None:
        lines, document["capabilities"] = capabilities(loaded.profile, inventory)
        for line in lines:
            echo(line)
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
