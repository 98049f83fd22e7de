"""`pacsmig check`: the pre-flight checks against the real peers (runner.execute.preflight)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runner.morph.loaded import load_profile


def check(profile: Path, echo: Callable[[str], None], err: Callable[[str], object]) -> int:
    """Run every check; exit code 1 when one failed."""
    from runner.execute.preflight import run_checks

    results = run_checks(load_profile(profile), echo)
    failed = [r for r in results if not r.ok]
    if failed:
        err(f"{len(failed)} of {len(results)} checks failed: fix them before go-live")
        return 1
    echo(f"All {len(results)} checks passed")
    return 0
