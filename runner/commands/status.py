"""`pacsmig status`: where the migration stands, from the ledger (runner.execute.status)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runner.morph.loaded import load_profile


def status(profile: Path, echo: Callable[[str], object]) -> int:
    """Print the status; always exit code 0."""
    from runner.execute.status import status_lines

    for line in status_lines(load_profile(profile)):
        echo(line)
    return 0
