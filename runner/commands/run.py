"""`pacsmig run`: the cheap checks, the census and plan, then the migration
(runner.execute.run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runner.commands.census import build_plan
from runner.morph.loaded import load_profile


def run(profile: Path, limit: int | None, csv_path: Path | None, write: Callable[[str], None],
        is_tty: bool, err: Callable[[str], object]) -> int:
    """Migrate; exit code 130 when interrupted, 1 when not complete or a check fails."""
    from runner.execute.preflight import cheap_check_failures
    from runner.execute.run import run_migration

    loaded = load_profile(profile)
    failures = cheap_check_failures(loaded)
    if failures:
        for line in failures:
            err(f"error: {line}")
        err("Nothing migrated: `pacsmig check PROFILE` runs every check")
        return 1
    summary = run_migration(loaded, build_plan(loaded, csv_path), limit, write, is_tty)
    for line in summary.lines():
        write(line)
    if summary.interrupted:
        return 130
    return 0 if summary.complete else 1
