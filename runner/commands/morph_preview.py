"""`pacsmig morph-preview`: the rules tried on real headers from the source (C-FIND only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runner.commands.census import build_plan
from runner.morph.loaded import load_profile


def morph_preview(profile: Path, sample: int, csv_path: Path | None, show_identifiers: bool,
                  echo: Callable[[str], object]) -> int:
    """Preview the rules on about `sample` instances; exit code 1 when the rules fail on one."""
    from runner.execute.morph_preview import morph_preview_command, preview_lines

    loaded = load_profile(profile)
    result = morph_preview_command(loaded, build_plan(loaded, csv_path), sample,
                                   show_identifiers)
    preview_lines(result, echo)
    return 1 if result.failures else 0
