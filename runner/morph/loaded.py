"""A profile loaded for one command: the validated SiteProfile, its file's identity, and its
morphing rules compiled once (each lookup table read once).

The rules are compiled here, by morph, from the profile: the profile package does not
import morph. Everything a command runs (the plan, the forwarding workers, the engine, the
sample check, the reports) uses this one RuleSet, so no two parts can hold rules from
different reads of a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.errors import Problem, ProfileError
from runner.morph.errors import MorphConfigError
from runner.morph.rules import compile_rules, rule_errors
from runner.morph.ruleset import RuleSet
from runner.profile.load import ProfileReading, read_profile
from runner.profile.models import SiteProfile


@dataclass(frozen=True)
class LoadedProfile:
    """A validated profile, the identity of the file it came from, and its compiled rules."""

    profile: SiteProfile
    path: Path
    sha256: str
    rules: RuleSet


def profile_rules(profile: SiteProfile) -> RuleSet:
    """The profile's morphing rules compiled with its options (MorphConfigError if bad)."""
    options = profile.morphing_options
    return compile_rules(profile.morphing, allow_uid_changes=options.allow_uid_changes,
                         charset_fallback=options.charset_fallback)


def load_profile(path: Path) -> LoadedProfile:
    """Load and validate a profile and compile its rules; ProfileError lists every problem."""
    reading = read_profile(path)
    if reading.profile is None or reading.problems:
        problems = _every_problem(reading)
        raise ProfileError(problems or [Problem(str(path), 1, 1, "profile is not valid")])
    try:
        rules = profile_rules(reading.profile)
    except MorphConfigError as first:
        raise ProfileError(_every_problem(reading)
                           or [reading.problem(first.loc, first.message)]) from None
    return LoadedProfile(reading.profile, path, reading.sha256, rules)


def validate_profile(path: Path) -> list[Problem]:
    """Every problem in a profile file, its rules' included (empty when it is valid)."""
    return _every_problem(read_profile(path))


def _every_problem(reading: ProfileReading) -> list[Problem]:
    """The reading's problems and each problem of each rule (`compile_rules` stops at the
    first), located in the file."""
    found = [reading.problem(e.loc, e.message)
             for e in rule_errors(reading.rules, allow_uid_changes=reading.allow_uid_changes)]
    return sorted({*reading.problems, *found}) if found else reading.problems
