"""`pacsmig demo --compare`: the whole job on loopback, twice (the profile's delay formula, then
the hourly break), each run next to its forecast; the first run is the demo `make demo` runs."""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from runner import cli
from runner.commands import demo_compare
from runner.commands.demo_compare import run_compare

ROOT = Path(__file__).parents[2]


@pytest.mark.peers  # renders nothing itself, but CI must run it: it is the product's showcase
def test_demo_migrates_everything_and_shows_the_principles_under_both_strategies(
        tmp_path: Path) -> None:
    user_reports = ROOT / "reports" / "demo"
    before = _listing(user_reports)
    lines: list[str] = []
    runs = run_compare(lines.append, False, 32, tmp_path, _five_past_the_hour())
    out = "\n".join(lines)
    first = out[:out.index("=== Run 2 of 2")]
    assert [r.result.summary.complete for r in runs] == [True, True], out[-3000:]
    assert "Run finished: 32 of 32 studies verified" in first
    measured = re.search(r"Simulated PACS: (\d+) recalls \(.*?\) of (\d+) studies .*?, "
                         r"(\d+) of them clinically recent; (\d+) device lock-ups survived", first)
    assert measured is not None, first[-2000:]
    nearline = re.search(r"nearline 0/(\d+)", first)
    assert nearline is not None and int(nearline.group(1)) > 0
    # only the cloud studies were ever recalled (none that was local at the start)
    assert int(measured.group(2)) == int(nearline.group(1))
    assert measured.group(3) == "0"  # re-dating kept every recent study local
    assert re.search(r"in flight sim1:\d+ sim2:\d+", first)  # both devices at work
    assert "lock-ups" in first[first.index("strategy"):first.index("Against")]  # the forecast
    assert "oldest-first/no-redate" in first and "recalls" in first
    # the simulated RIS's order part way through: its patient's priors moved first
    lane = re.search(r"Priority lane: hl7 ORM\^O01 for patient \*+RS-7: (\d+) priors to move, "
                     r"(\d+) verified; .* \(ACK AA\)\n  the priors it moved ahead came .* ahead of "
                     r"(\d+) studies", first)
    assert lane is not None, first[-2000:]
    assert lane.group(1) == lane.group(2) != "0" and int(lane.group(3)) > 0
    assert sum(r.result.lockups for r in runs) > 0  # the second device locked up, runs went on
    # each run against the forecast it started from: duration, dead time, lock-ups
    assert all(r.forecast is not None and not r.forecast.open for r in runs)
    table = out[out.index("The same migration under both strategies"):]
    for strategy in ("formula", "hourly break"):
        for measure in ("duration", "dead time", "lock-ups"):
            assert re.search(rf"{strategy}.*{measure}\s+\S+( \S+)?\s+\S+( \S+)?\s+\S+", table)
    assert _listing(user_reports) == before  # the user's own demo folder is left alone
    reports = tmp_path / "demo-compare" / "formula" / "demo"
    with (reports / "reconciliation.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 32 and {r["status"] for r in rows} == {"verified"}
    assert (reports / "signoff.html").stat().st_size > 10_000


def test_demo_compare_is_the_cli_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked: list[tuple[int, Path | None]] = []

    def fake(studies: int, reports: Path | None, *_: object) -> int:
        asked.append((studies, reports))
        return 0
    monkeypatch.setattr(demo_compare, "compare", fake)
    result = CliRunner().invoke(cli.app, ["demo", "--compare", "--studies", "20",
                                          "--reports", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert asked == [(20, tmp_path)]


def _five_past_the_hour() -> demo_compare.WallClock:
    """The site's clock moved to five past the hour (the hour and day kept): a few minutes of
    runs never reach the hourly break at minute 50."""
    zone = ZoneInfo("Europe/London")
    now = datetime.now(zone)
    shift = now.replace(minute=5, second=0, microsecond=0) - now

    def clock(tz: ZoneInfo) -> datetime:
        return datetime.now(tz) + shift
    return clock


def _listing(folder: Path) -> list[tuple[str, int]]:
    """Every file under `folder` with its modification time (ns): untouched if equal."""
    if not folder.exists():
        return []
    return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())
