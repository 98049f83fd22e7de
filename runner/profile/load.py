"""Reading a site profile: YAML -> SiteProfile, with every problem located in the file
(the morphing rules are compiled, and their problems found, by runner.morph.loaded)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from difflib import get_close_matches
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from runner.errors import Problem
from runner.profile.checks import cross_field_problems
from runner.profile.models import SiteProfile
from runner.profile.morphing import MorphRule
from runner.profile.yamlsrc import Loc, SourceMap, load_yaml, read_text

# Error types that only say "this branch of a union did not fit".
_TYPE_MISMATCH = frozenset({
    "string_type", "int_type", "int_parsing", "float_type", "float_parsing", "list_type",
    "dict_type", "model_type", "model_attributes_type", "literal_error", "date_type",
    "date_parsing", "date_from_datetime_parsing", "bool_type", "none_required",
    "is_instance_of", "string_pattern_mismatch", "bool_parsing",
})


@dataclass(frozen=True)
class ProfileReading:
    """A profile file read and checked as far as the profile itself goes: YAML, the model,
    the cross-field checks. Its morphing rules are compiled (and their problems found) by
    runner.morph.loaded, which locates them in the file with `problem`."""

    path: Path
    text: str | None  # None: the file could not be read
    profile: SiteProfile | None  # None: not valid
    problems: list[Problem]
    source: SourceMap | None = None
    rules: tuple[MorphRule | None, ...] = ()  # the rules to compile (see _usable_rules)
    allow_uid_changes: bool = False

    @property
    def sha256(self) -> str:
        """The file's identity: the SHA-256 of its text."""
        return hashlib.sha256((self.text or "").encode("utf-8")).hexdigest()

    def problem(self, loc: Loc, message: str) -> Problem:
        """A problem at `loc` of the document, as `PATH:LINE:COLUMN: key.path: message`."""
        if self.source is None:
            return Problem(str(self.path), 1, 1, message)
        return self.source.problem(loc, f"{_dotted(loc)}: {message}")


def read_profile(path: Path) -> ProfileReading:
    """Read and validate a profile file; every problem found is in `problems`."""
    text, problems = read_text(path)
    if text is None:
        return ProfileReading(path, None, None, problems)
    data, source, problems = load_yaml(text, str(path))
    if problems and data is None:
        return ProfileReading(path, text, None, problems, source)
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        message = f"a site profile is a mapping of sections; this is {what}"
        return ProfileReading(path, text, None, [*problems, Problem(str(path), 1, 1, message)],
                              source)
    profile: SiteProfile | None = None
    problems += _date_problems(data, source)
    try:
        profile = SiteProfile.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        problems += _pydantic_problems(exc, data, source)
    problems += [source.problem(loc, f"{_dotted(loc)}: {msg}") for loc, msg in
                 cross_field_problems(data)]
    rules, allow = _usable_rules(profile, data, path)
    return ProfileReading(path, text, profile, sorted(set(problems)), source, tuple(rules),
                          allow)


def _date_problems(data: dict[str, Any], source: SourceMap) -> list[Problem]:
    """Morphing values YAML read as dates (unquoted 2020-01-01): each with its key path; the
    model's own complaint at the same place is then left out."""
    found: list[Problem] = []
    rules = data.get("morphing")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        for section in ("set", "when"):
            values = rule.get(section) if isinstance(rule, dict) else None
            for key, value in (values.items() if isinstance(values, dict) else ()):
                if isinstance(value, date):
                    loc: Loc = ("morphing", index, section, key)
                    source.refused.add(loc)
                    found.append(source.problem(loc, (
                        f"{_dotted(loc)}: {value} is read by YAML as a date: quote it: DA is "
                        f"YYYYMMDD ('{value:%Y%m%d}')")))
    return found


def _usable_rules(profile: SiteProfile | None, data: dict[str, Any],
                  path: Path) -> tuple[list[MorphRule | None], bool]:
    """The morphing rules to compile: the profile's, or (the profile invalid elsewhere) each
    rule that is valid on its own, so that VR problems show with the other problems."""
    if profile is not None:
        return list(profile.morphing), profile.morphing_options.allow_uid_changes
    rules: list[MorphRule | None] = []
    raw = data.get("morphing")
    for item in raw if isinstance(raw, list) else []:
        rules.append(_valid_part(item, path))
    options = data.get("morphing_options")
    allow = isinstance(options, dict) and options.get("allow_uid_changes") is True
    return rules, allow


def _valid_part(item: Any, path: Path) -> MorphRule | None:
    """A rule as the model takes it, else with the `set` entries the model refuses left out
    (they are reported by the model), else None (keeps the other rules' indexes)."""
    context = {"base_dir": path.parent}

    def valid(candidate: Any) -> MorphRule | None:
        try:
            return MorphRule.model_validate(candidate, context=context)
        except ValidationError:
            return None

    rule = valid(item)
    if rule is not None or not isinstance(item, dict) or not isinstance(item.get("set"), dict):
        return rule
    kept = {k: v for k, v in item["set"].items() if valid({**item, "set": {k: v}})}
    return valid({**item, "set": kept}) if kept else None


def _pydantic_problems(exc: ValidationError, data: Any, source: SourceMap) -> list[Problem]:
    groups: dict[Loc, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        loc = _located(error, data)
        if not any(loc[:len(r)] == r for r in source.refused):
            groups.setdefault(loc, []).append(error)
    return [_group_problem(loc, errors, source) for loc, errors in groups.items()
            if not _explained_deeper(loc, errors, groups)]


def _explained_deeper(loc: Loc, errors: list[ErrorDetails],
                      groups: dict[Loc, list[ErrorDetails]]) -> bool:
    """A union's "wrong type" errors, when one branch has a precise error further in."""
    if any(e["type"] not in _TYPE_MISMATCH for e in errors):
        return False
    return any(len(other) > len(loc) and other[:len(loc)] == loc for other in groups)


def _located(error: ErrorDetails, data: Any) -> Loc:
    """The error's location in the document: union branch names dropped, field hints added."""
    ctx = error.get("ctx") or {}
    if "loc" in ctx:
        return tuple(ctx["loc"])
    loc = _strip_union_tags(tuple(error["loc"]), data, error["type"] == "missing")
    if "field" in ctx:
        loc = (*loc, ctx["field"])
    return loc


def _strip_union_tags(loc: Loc, data: Any, missing: bool) -> Loc:
    kept: list[str | int] = []
    node = data
    for i, seg in enumerate(loc):
        if _has(node, seg):
            node = node[seg]
        elif missing and i == len(loc) - 1:
            pass  # a missing key: keep its name for the message
        elif seg == "[key]" and i == len(loc) - 1:
            pass  # the error is in a mapping key, not its value
        else:
            continue  # a union branch name, not part of the document
        kept.append(seg)
    return tuple(kept)


def _has(node: Any, seg: str | int) -> bool:
    if isinstance(node, dict):
        return seg in node
    return isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node)


def _group_problem(loc: Loc, errors: list[ErrorDetails], source: SourceMap) -> Problem:
    specific = [e for e in errors if e["type"] not in _TYPE_MISMATCH] or errors
    error = specific[0]
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        return source.problem(loc, f"{_dotted(loc)}: {error['msg']}", at_key=True)
    if error["type"] == "extra_forbidden":
        return source.problem(loc, f"{_dotted(loc)}: {_unknown_key(str(loc[-1]))}", at_key=True)
    if error["type"] == "missing":
        return source.problem(loc, f"{_dotted(loc)}: required key is missing")
    message = error["msg"] if len(specific) == 1 else _either(specific)
    problem = source.problem(loc, f"{_dotted(loc)}: {message}")
    return _shifted(problem, error, loc, source)


def _either(errors: list[ErrorDetails]) -> str:
    return "expected one of: " + "; ".join(dict.fromkeys(e["msg"] for e in errors))


def _shifted(problem: Problem, error: ErrorDetails, loc: Loc, source: SourceMap) -> Problem:
    """Point inside a string value (a formula or regex) where the error says where."""
    offset = (error.get("ctx") or {}).get("offset")
    if not isinstance(offset, int) or error["type"] not in ("formula", "regex"):
        return problem
    column0 = offset - 1 if error["type"] == "formula" else offset
    quote = 1 if loc in source.quoted else 0
    return Problem(problem.path, problem.line, problem.column + quote + max(column0, 0),
                   problem.message)


def _dotted(loc: Loc) -> str:
    out = ""
    for seg in loc:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out or "profile"


def _unknown_key(key: str) -> str:
    close = get_close_matches(key, _known_keys(), n=1, cutoff=0.75)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}'{hint}"


@cache
def _known_keys() -> tuple[str, ...]:
    keys: set[str] = set()
    _collect_keys(SiteProfile, keys, set())
    return tuple(sorted(keys))


def _collect_keys(model: type[BaseModel], keys: set[str], seen: set[type]) -> None:
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        keys.add(info.alias or name)
        for sub in _models_in(info.annotation):
            _collect_keys(sub, keys, seen)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]
