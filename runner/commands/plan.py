"""`pacsmig plan`: take the inventory (CSV or C-FIND), compile the plan, explain it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from runner.commands.census import inventory_and_plan
from runner.execute.peers import check_tls
from runner.inventory.model import Inventory
from runner.morph.loaded import LoadedProfile, load_profile
from runner.plan.explain import explain, plan_json
from runner.plan.model import Plan
from runner.plan.schedule import schedule_now
from runner.profile.models import SiteProfile

Capabilities = Callable[[SiteProfile, Inventory], tuple[list[str], dict[str, Any]]]


def plan(profile: Path, csv_path: Path | None, json_file: Path | None,
         echo: Callable[[str], object], forecast: bool = False) -> int:
    """The dry run of the profile at `profile`; exit code 1 when the census is incomplete."""
    from runner.execute.capabilities import live_capabilities

    planned = plan_command(load_profile(profile), csv_path, json_file, echo, forecast,
                           live_capabilities)
    return 0 if planned.census.complete else 1


def plan_command(loaded: LoadedProfile, csv_path: Path | None, json_file: Path | None,
                 echo: Callable[[str], object], forecast: bool = False,
                 capabilities: Capabilities | None = None) -> Plan:
    """The dry run: print the explanation (and forecast), write the JSON if asked; with the
    live source, the capability matrix `capabilities` gives (it asks the peers)."""
    check_tls(loaded.profile)
    inventory, plan = inventory_and_plan(loaded, csv_path)
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
        from runner.ledger import LEDGER_FILENAME
        from runner.ledger.calibration import pilot_rates
        from runner.ledger.queries import pilot_timings
        from runner.tiering.forecast import forecast_json, forecast_lines, forecast_strategies

        pilot = pilot_timings(loaded.profile.reports.dir / LEDGER_FILENAME)
        result = forecast_strategies(loaded.profile, plan,
                                     datetime.now(ZoneInfo(plan.timezone)).replace(tzinfo=None),
                                     pilot=pilot, rates=pilot_rates(
                                         loaded.profile.reports.dir / LEDGER_FILENAME))
        for line in forecast_lines(result):
            echo(line)
        document["forecast"] = forecast_json(result)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        echo(f"Plan JSON written to {json_file}")
    return plan
