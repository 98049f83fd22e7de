"""`pacsmig demo --compare`: the demo migration twice, the profile's formula then the hourly
break, each run's measured dead time, lock-ups and duration next to the forecast it started from.

The hourly break is the customary alternative to a delay formula: no delay between
retrieves, and no retrieve starts from minute `break_minute` to the end of each hour. The
runner has it as a profile (`hourly_break_profile`): the same throttles without their delay,
and the schedule with each hour's last minutes left unmatched (paused); the forecast's model
sees that profile as its `hourly-break` strategy does (runner.tiering.timeline), so each run
is compared with the forecast of exactly what it did (the `forecast` event it recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from runner.commands.demo import DemoResult, run_demo
from runner.ledger import LEDGER_FILENAME
from runner.ledger.queries import ForecastActual, error_text, ledger_forecasts
from runner.morph.loaded import LoadedProfile
from runner.profile.models import ScheduleEntry, SiteProfile, parse_hours
from runner.tiering.forecast import duration_text
from runner.tiering.params import TierParameters

DAY_MINUTES = 24 * 60
WallClock = Callable[[ZoneInfo], datetime]  # the schedule's clock: local time in a zone


@dataclass(frozen=True, slots=True)
class ComparedRun:
    """One of the two runs: its strategy, what the demo measured, the forecast it started
    from with the ledger's actuals (None when the run recorded no forecast)."""

    strategy: str
    result: DemoResult
    forecast: ForecastActual | None


def compare(studies: int, reports_dir: Path | None, write: Callable[[str], None],
            is_tty: bool) -> int:
    """Both runs and the comparison; exit code 1 when either migration is not complete."""
    runs = run_compare(write, is_tty, studies, reports_dir)
    return 0 if all(r.result.summary.complete for r in runs) else 1


def run_compare(write: Callable[[str], None], is_tty: bool, studies: int = 60,
                reports_dir: Path | None = None,
                wall_clock: WallClock = datetime.now) -> list[ComparedRun]:
    """The demo under the profile's formula, then under the hourly break (each in a folder of
    its own under `reports_dir`/demo-compare, or next to the profile's reports folder), on
    the schedule's clock `wall_clock`: a run in the break waits for the hour, as the hourly
    break does."""
    runs = []
    for number, (strategy, change) in enumerate(_variants(), start=1):
        write(f"=== Run {number} of 2: {strategy} ===")
        result = run_demo(write, is_tty, studies, None,
                          _in_compare(reports_dir, strategy, change), wall_clock)
        forecasts = ledger_forecasts(result.reports_dir / LEDGER_FILENAME)
        runs.append(ComparedRun(strategy, result, forecasts[-1] if forecasts else None))
    for line in comparison_lines(runs):
        write(line)
    return runs


def _variants() -> Iterator[tuple[str, Callable[[SiteProfile], SiteProfile]]]:
    yield "formula (the profile's delay_seconds)", _same
    minute = TierParameters().break_minute
    yield f"hourly break (no delay; paused from minute {minute})", \
        lambda profile: hourly_break_profile(profile, minute)


def _same(profile: SiteProfile) -> SiteProfile:
    return profile


def _in_compare(reports_dir: Path | None, strategy: str,
                change: Callable[[SiteProfile], SiteProfile]
                ) -> Callable[[LoadedProfile], LoadedProfile]:
    """The demo profile changed for the strategy, writing under a folder of its own."""
    slug = "hourly-break" if strategy.startswith("hourly") else "formula"

    def changed(loaded: LoadedProfile) -> LoadedProfile:
        profile = loaded.profile
        base = reports_dir if reports_dir is not None else profile.reports.dir.parent
        folder = base / "demo-compare" / slug / "demo"
        moved = change(profile).model_copy(update={
            "reports": profile.reports.model_copy(update={"dir": folder}),
            "listener": profile.listener.model_copy(update={"spool_dir": folder / "spool"})})
        return replace(loaded, profile=moved)
    return changed


def hourly_break_profile(profile: SiteProfile, break_minute: int) -> SiteProfile:
    """The profile under the hourly break: its throttles without delay, its schedule with
    no entry matching from `break_minute` to the end of each hour (paused)."""
    throttles = {name: t.model_copy(update={"delay_seconds": 0})
                 for name, t in profile.throttles.items()}
    entries = profile.schedule or [ScheduleEntry(throttle=next(iter(profile.throttles)))]
    schedule = [piece for entry in entries for piece in _broken(entry, break_minute)]
    return profile.model_copy(update={"throttles": throttles, "schedule": schedule})


def _broken(entry: ScheduleEntry, break_minute: int) -> Iterator[ScheduleEntry]:
    """The entry's time in each hour up to the break, as entries of their own."""
    spans = _spans(parse_hours(entry.hours) if entry.hours else (0, DAY_MINUTES))
    for hour in range(24):
        first, last = hour * 60, hour * 60 + break_minute
        for start, end in spans:
            begin, finish = max(start, first), min(end, last)
            if begin < finish:
                yield entry.model_copy(update={"hours": f"{_hhmm(begin)}-{_hhmm(finish)}"})


def _spans(minutes: tuple[int, int]) -> list[tuple[int, int]]:
    """Minutes since midnight as spans that do not wrap."""
    start, end = minutes
    return [(start, end)] if start < end else [(start, DAY_MINUTES), (0, end)]


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def comparison_lines(runs: list[ComparedRun]) -> list[str]:
    """Each run's duration, dead time and lock-ups, measured and forecast, with the error."""
    rows = [["strategy", "measure", "forecast", "measured", "error"]]
    for run in runs:
        for measure, forecast, measured in _measures(run):
            rows.append([run.strategy, measure, forecast, measured, _error(measure, run)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["", "The same migration under both strategies, measured on the simulated PACS:"]
    for n, row in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return [*lines, "  (lock-ups: as the simulated devices counted them; dead time: nothing "
                    "in flight while studies waited)"]


def _measures(run: ComparedRun) -> list[tuple[str, str, str]]:
    actual = run.forecast
    dead = actual.dead_time_hours if actual else 0.0
    hours = actual.hours if actual else 0.0
    f = actual.forecast if actual else {}
    return [("duration", _hours(f.get("hours")), duration_text(hours)),
            ("dead time", _hours(f.get("dead_time_hours")), duration_text(dead)),
            ("lock-ups", str(f.get("lockups", "-")), str(run.result.lockups))]


def _hours(value: object) -> str:
    return duration_text(float(value)) if isinstance(value, int | float) else "-"


def _error(measure: str, run: ComparedRun) -> str:
    actual = run.forecast
    if actual is None:
        return ""
    f = actual.forecast
    pairs = {"duration": (float(f["hours"]), actual.hours),
             "dead time": (float(f["dead_time_hours"]), actual.dead_time_hours),
             "lock-ups": (float(f["lockups"]), float(run.result.lockups))}
    return error_text(*pairs[measure])
