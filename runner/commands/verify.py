"""`pacsmig verify`: the destination asked again about every study sent
(runner.execute.settlement.reverify), or, with --rebuild, the ledger rebuilt from what it holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runner.commands.census import build_plan
from runner.morph.loaded import load_profile


def verify(profile: Path, rebuild: bool, csv_path: Path | None,
           echo: Callable[[str], None]) -> int:
    """Check again; exit code 1 when a study is short or a check was not answered."""
    from runner.execute.rebuild import rebuild_from_destination
    from runner.execute.settlement.reverify import verify_again

    loaded = load_profile(profile)
    if rebuild:
        rebuilt = rebuild_from_destination(loaded, build_plan(loaded, csv_path), echo)
        for line in rebuilt.lines():
            echo(line)
        return 0
    summary = verify_again(loaded, echo)
    for line in summary.lines():
        echo(line)
    failed = (summary.short or summary.unanswered or summary.sample.disagreed
              or summary.sample.not_compared)
    return 1 if failed else 0
