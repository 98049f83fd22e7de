"""`pacsmig validate` and `pacsmig schema`: the profiles checked completely, with no network;
the JSON Schema of a profile."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from runner.morph.loaded import validate_profile
from runner.profile.schema import profile_json_schema


def validate(paths: Sequence[Path], echo: Callable[[str], object],
             err: Callable[[str], object]) -> int:
    """Every problem of every profile (exit code 2), else each profile said valid."""
    problems = [p for path in paths for p in validate_profile(path)]
    for problem in problems:
        err(str(problem))
    if problems:
        return 2
    for path in paths:
        echo(f"{path}: valid")
    return 0


def schema(echo: Callable[[str], object]) -> int:
    """Print the JSON Schema of the site profile."""
    echo(json.dumps(profile_json_schema(), indent=2, sort_keys=False))
    return 0
