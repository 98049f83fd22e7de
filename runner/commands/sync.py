"""`pacsmig sync`: the census again, then what is new or changed (runner.execute.sync)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from runner.commands.census import build_plan
from runner.morph.loaded import load_profile


def sync(profile: Path, since: date | None, write: Callable[[str], None], is_tty: bool) -> int:
    """Catch up; exit code 130 when interrupted, 1 when not complete."""
    from runner.execute.sync import sync_migration

    loaded = load_profile(profile)
    summary = sync_migration(loaded, build_plan(loaded, None, since), write, is_tty)
    for line in summary.run.lines():
        write(line)
    if summary.run.interrupted:
        return 130
    return 0 if summary.run.complete else 1
