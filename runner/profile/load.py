"""Loading a site profile: YAML -> SiteProfile, with every problem located in the file."""

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

from runner.errors import Problem, ProfileError
from runner.profile.checks import cross_field_problems
from runner.profile.models import MorphRule, SiteProfile
from runner.profile.yamlsrc import Loc, SourceMap, load_yaml, read_text

# Error types that only say "this branch of a union did not fit".
_TYPE_MISMATCH = frozenset({
    "string_type", "int_type", "int_parsing", "float_type", "float_parsing", "list_type",
    "dict_type", "model_type", "model_attributes_type", "literal_error", "date_type",
    "date_parsing", "date_from_datetime_parsing", "bool_type", "none_required",
    "is_instance_of", "string_pattern_mismatch", "bool_parsing",
})


@dataclass(frozen=True)
class LoadedProfile:
    """A validated profile with the identity of the file it came from."""

    profile: SiteProfile
    path: Path
    sha256: str


def load_profile(path: Path) -> LoadedProfile:
    """Load and validate a profile; raises ProfileError listing every problem."""
    text, problems = read_text(path)
    if text is None:
        raise ProfileError(problems)
    profile, problems = _validate_text(text, path)
    if profile is None or problems:
        raise ProfileError(problems or [Problem(str(path), 1, 1, "profile is not valid")])
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedProfile(profile, path, digest)


def validate_profile(path: Path) -> list[Problem]:
    """Every problem in a profile file (an empty list when it is valid)."""
    text, problems = read_text(path)
    if text is None:
        return problems
    return _validate_text(text, path)[1]


def _validate_text(text: str, path: Path) -> tuple[SiteProfile | None, list[Problem]]:
    data, source, problems = load_yaml(text, str(path))
    if problems and data is None:
        return None, problems
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        message = f"a site profile is a mapping of sections; this is {what}"
        return None, [*problems, Problem(str(path), 1, 1, message)]
    profile: SiteProfile | None = None
    problems += _date_problems(data, source)
    try:
        profile = SiteProfile.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        problems += _pydantic_problems(exc, data, source)
    problems += [source.problem(loc, f"{_dotted(loc)}: {msg}") for loc, msg in
                 cross_field_problems(data)]
    problems += _rule_problems(_usable_rules(profile, data, path), source)
    return profile, sorted(set(problems))


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


def _rule_problems(usable: tuple[list[MorphRule | None], bool],
                   source: SourceMap) -> list[Problem]:
    """What the morph compiler finds that the model cannot: VRs, tables, identity rules."""
    from runner.morph.rules import rule_errors

    rules, allow = usable
    return [source.problem(e.loc, f"{_dotted(e.loc)}: {e.message}")
            for e in rule_errors(rules, allow_uid_changes=allow)]


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
