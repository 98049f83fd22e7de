"""The forecast: the plan run through the tier model under each strategy, and its explanation."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Any

from runner.plan.explain import size_unit
from runner.plan.model import Phase, Plan
from runner.profile.models import SiteProfile
from runner.tiering.calibrate import Calibration, PilotMeasures, PilotRetrieve, calibrate
from runner.tiering.clinical import Workload
from runner.tiering.params import TierParameters
from runner.tiering.scenario import build_scenario, start_of
from runner.tiering.simulate import Simulation, StrategyResult
from runner.tiering.strategy import STANDARD_STRATEGIES, Strategy, profile_strategy

BASELINE = STANDARD_STRATEGIES[0]  # oldest-first/no-redate: what a naive migration does


@dataclass(frozen=True, slots=True)
class Forecast:
    """Each strategy's cost on the same inventory, with what the model assumed."""

    start: datetime
    studies: int
    local_store_gb: float
    workload: Workload
    parameters: TierParameters
    strategies: tuple[StrategyResult, ...]
    calibration: Calibration | None = None

    def result(self, name: str) -> StrategyResult:
        """The strategy of that name."""
        return next(r for r in self.strategies if r.name == name)

    @property
    def chosen(self) -> StrategyResult:
        """The profile's own strategy."""
        return next(r for r in self.strategies if r.profile_choice)


def forecast_strategies(profile: SiteProfile, plan: Plan,
                        start: date | datetime | None = None,
                        params: TierParameters | None = None,
                        strategies: Sequence[Strategy] = STANDARD_STRATEGIES,
                        pilot: Sequence[PilotRetrieve] = (),
                        rates: PilotMeasures | None = None) -> Forecast:
    """Forecast `plan` under each strategy (and the profile's own), from `start` (default:
    midnight of the plan's day, site time); `params` default to `from_profile(profile)`,
    with the speeds a pilot run measured (`pilot`: the ledger's retrieves) in their place."""
    calibration = calibrate(params or TierParameters.from_profile(profile), pilot, rates)
    params = calibration.parameters
    own = profile_strategy(profile)
    chosen = tuple(strategies) if own in strategies else (*strategies, own)
    begin = start_of(plan, start)
    scenario = build_scenario(plan, begin, params, calibration.sizes)
    results = tuple(replace(Simulation(scenario, s).run(), profile_choice=s == own)
                    for s in chosen)
    return Forecast(begin, len(scenario.studies), scenario.capacity_gb, scenario.workload,
                    params, results, calibration)


def forecast_json(forecast: Forecast) -> dict[str, Any]:
    """The plan JSON's `forecast` section (spec shape, with extra keys)."""
    w = forecast.workload
    used = {"local_store_gb": forecast.local_store_gb,
            "new_studies_per_day": w.new_studies_per_day, "new_study_mb": w.new_study_mb,
            "new_mb_per_day": w.new_studies_per_day * w.new_study_mb,
            "clinical_reads_per_day": w.reads_per_day}
    return {"strategies": [_strategy_json(r) for r in forecast.strategies],
            "start": forecast.start.isoformat(), "studies": forecast.studies,
            "assumptions": {**asdict(forecast.parameters),
                            **{k: round(v, 3) for k, v in used.items()}},
            "measured": dict(forecast.calibration.measured) if forecast.calibration else {},
            "mb_per_instance": _sizes_json(forecast.calibration),
            "pilot_rates": _rates_json(forecast.calibration)}


def _sizes_json(calibration: Calibration | None) -> dict[str, Any]:
    """The MB per instance a pilot measured, by modality ("" for any other), with how many
    retrieves measured them; empty when the plan's 0.5 MB an instance was used."""
    sizes = calibration.sizes if calibration else None
    if sizes is None or not sizes.retrieves:
        return {}
    return {"by_modality": {m or "*": round(mb, 4) for m, mb in sizes.per_instance.items()},
            "retrieves": sizes.retrieves}


def _rates_json(calibration: Calibration | None) -> dict[str, Any]:
    """The pilot's other measures (empty without a pilot run)."""
    rates = calibration.rates if calibration else None
    if rates is None:
        return {}
    return {"trouble_by_concurrency": {str(n): {"retrieves": total, "trouble": bad}
                                       for n, (total, bad) in
                                       sorted(rates.trouble_by_concurrency.items())},
            "forward_mb_per_s": rates.forward_mb_per_s, "forwards": rates.forwards,
            "verified_per_hour": rates.verified_per_hour,
            "verifications": rates.verifications}


def _strategy_json(r: StrategyResult) -> dict[str, Any]:
    return {"name": r.name, "hours": round(r.hours, 2), "recalled_gb": round(r.recalled_gb, 3),
            "recent_studies_evicted": r.recent_studies_evicted,
            "dead_time_hours": round(r.dead_time_hours, 2), "redates": r.redates,
            "lockups": r.lockups, "locked_hours": round(r.locked_hours, 2),
            "turnover_hours": None if r.turnover_hours is None else round(r.turnover_hours, 3),
            "redate_rounds": r.redate_rounds,
            "recalls": r.recalls, "evictions": r.evictions, "studies": r.studies,
            "finished": r.finished, "profile_choice": r.profile_choice}


def forecast_lines(forecast: Forecast) -> list[str]:
    """The forecast for a person: what was assumed, a table of strategies (sizes in one unit
    that fits them all), the verdict."""
    unit = size_unit(max(r.recalled_gb * 1000 for r in forecast.strategies))
    rows = [["", "strategy", "duration", f"recalled {unit[0]}", "recent evicted", "lock-ups",
             "dead time", "re-dates"]]
    rows += [_row(r, unit[1]) for r in forecast.strategies]
    return [*_assumption_lines(forecast), *_table(rows),
            "  (* the profile's choice; recalls include clinicians' reads of pushed-off "
            "studies; dead time: nothing in flight, lock-ups included)",
            *_lockup_lines(forecast), *_turnover_lines(forecast), _verdict(forecast), ""]


def _assumption_lines(f: Forecast) -> list[str]:
    p, w = f.parameters, f.workload
    store_unit, per = size_unit(f.local_store_gb * 1000)
    return [f"Forecast from {f.start:%Y-%m-%d %H:%M} ({f.start.tzinfo}), {f.studies:,} studies:",
            f"  local store {f.local_store_gb * 1000 / per:,.{0 if per > 1 else 1}f} "
            f"{store_unit} (pushed off to "
            f"{p.low_water_fraction:.0%}), recall {p.nearline_mb_per_s:g} MB/s, "
            f"retrieve {p.device_mb_per_s:g} MB/s; {w.new_studies_per_day:,.1f} new studies "
            f"a day ({w.new_study_mb:,.0f} MB each), {w.reads_per_day:,.1f} clinical reads "
            f"a day; recent = last {p.recent_days} days",
            f"  a device delivers {p.device_total_mb_per_s:g} MB/s across its retrieves and "
            f"locks up for {p.lockup_minutes:g} min when asked for more than "
            f"{p.lockup_backlog_mb:,.0f} MB it has not delivered (defaults; per device: "
            "source.devices[].limits)",
            *([f"  {f.calibration.describe()}"] if f.calibration else []),
            *(f"  {line}" for line in (f.calibration.rate_lines() if f.calibration else []))]


def _row(r: StrategyResult, mb_per_unit: float) -> list[str]:
    hours = duration_text(r.hours) if r.finished else f">{duration_text(r.hours)} (unfinished)"
    return ["*" if r.profile_choice else "", r.name, hours,
            f"{r.recalled_gb * 1000 / mb_per_unit:,.1f}",
            f"{r.recent_studies_evicted:,}", f"{r.lockups:,}", duration_text(r.dead_time_hours),
            f"{r.redates:,}"]


def _turnover_lines(f: Forecast) -> list[str]:
    """How fast the migration turns the local store over, against the re-date interval."""
    own, every = f.chosen, f.parameters.redate_every_hours
    if own.turnover_hours is None:
        return []
    line = (f"  The migration recalls a local store's worth in {duration_text(own.turnover_hours)}"
            f" (re-dating every {duration_text(every)})")
    if own.turnover_hours >= every:
        return [line + "."]
    if f.parameters.redate_headroom_fraction > 0:
        return [line + ": rounds also start on recalled volume "
                f"(redate.headroom_fraction {f.parameters.redate_headroom_fraction:g}), "
                f"{own.redate_rounds:,} rounds in all."]
    return [line + ": WARNING: every_hours alone cannot protect recent studies; set "
            "redate.headroom_fraction above 0 or re-date more often."]


def _lockup_lines(f: Forecast) -> list[str]:
    """A warning when the profile's own strategy locks a device up."""
    own = f.chosen
    if not own.lockups:
        return []
    return [f"  WARNING: the profile's throttles lock a device up {own.lockups:,} times "
            f"({duration_text(own.locked_hours)} locked): lower max_concurrent_retrieves or "
            "lengthen delay_seconds for large studies"]


def duration_text(hours: float) -> str:
    """A duration in the unit that fits: seconds or minutes when short (never "0.00 h")."""
    seconds = hours * 3600
    if seconds == 0:
        return "0"
    if seconds < 90:
        return f"{seconds:,.0f} s" if seconds >= 1 else "<1 s"
    if hours < 2:
        return f"{seconds / 60:,.0f} min"
    return f"{hours:,.{1 if hours < 100 else 0}f} h"


def figure_text(measure: str, value: float) -> str:
    """A forecast or actual figure: durations (a measure in hours) in the unit that fits,
    counts whole, other figures with three significant digits."""
    if "hours" in measure:
        return duration_text(value)
    return f"{value:,.0f}" if value == int(value) else f"{value:.3g}"


def _verdict(f: Forecast) -> str:
    own, base = f.chosen, next((r for r in f.strategies if r.name == BASELINE.name), None)
    if base is None or own is base:
        return f"The profile's strategy is {own.name}: no comparison with {BASELINE.name}."
    gb = base.recalled_gb - own.recalled_gb
    evicted = base.recent_studies_evicted - own.recent_studies_evicted
    return (f"Against {base.name} ({_amount(base.recalled_gb)} recalled, "
            f"{_studies(base.recent_studies_evicted)} pushed off), the profile's strategy "
            f"({own.name}) recalls {_less_gb(gb)} from nearline and pushes "
            f"{_fewer_studies(evicted)} off the local store.")


def _less_gb(saved: float) -> str:
    if _amount(abs(saved)) == _amount(0.0):
        return "the same"
    return f"{_amount(abs(saved))} {'less' if saved > 0 else 'more'}"


def _amount(gb: float) -> str:
    """GB in the unit that fits, one decimal: 4.0 GB, 18.4 MB."""
    unit, per = size_unit(gb * 1000)
    return f"{gb * 1000 / per:,.1f} {unit}"


def _fewer_studies(saved: int) -> str:
    if saved == 0:
        return "as many recent studies"
    return f"{abs(saved):,} {'fewer' if saved > 0 else 'more'} recent " \
           f"{'study' if abs(saved) == 1 else 'studies'}"


def _studies(count: int) -> str:
    return f"{count:,} recent {'study' if count == 1 else 'studies'}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                 enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def run_forecast(profile: SiteProfile, plan: Plan, study_uids: Collection[str],
                 start: datetime, pilot: Sequence[PilotRetrieve] = ()) -> StrategyResult:
    """The profile's own strategy forecast for just `study_uids` of the plan (what one run
    will migrate), from `start`: what the run is later compared with."""
    phases = tuple(_only(phase, study_uids) for phase in plan.phases)
    return forecast_strategies(profile, replace(plan, phases=phases), start,
                               strategies=(profile_strategy(profile),), pilot=pilot).chosen


def _only(phase: Phase, study_uids: Collection[str]) -> Phase:
    kept = [(s, d) for s, d in zip(phase.studies, phase.devices, strict=True)
            if s.study_uid in study_uids]
    return Phase.of(phase.tier, tuple(s for s, _ in kept), tuple(d for _, d in kept))


def forecast_detail(result: StrategyResult, gigabytes: float) -> dict[str, Any]:
    """The forecast a run started from, as the ledger keeps it (an event's detail)."""
    return {"strategy": result.name, "hours": round(result.hours, 4),
            "finished": result.finished, "studies": result.studies,
            "gb": round(gigabytes, 3), "recalls": result.recalls,
            "recalled_gb": round(result.recalled_gb, 3),
            "recent_studies_evicted": result.recent_studies_evicted,
            "dead_time_hours": round(result.dead_time_hours, 4), "lockups": result.lockups}
