"""Compiling the profile's `morphing` rules once: tags resolved, regexes compiled, lookup
tables loaded, values checked against their VR, identity changes refused unless allowed."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from runner.dicomdict import IDENTITY_TAGS, describe_tag, resolve_tag, vr_of
from runner.morph.actions import (
    Action,
    Assignment,
    Copy,
    Delete,
    MapValues,
    RemoveGroups,
    RemovePrivate,
    Replace,
    SetValues,
)
from runner.morph.charset import FALLBACKS, CharsetFallback
from runner.morph.conditions import Condition, Exists, Matches, OneOf
from runner.morph.errors import Loc, MorphConfigError
from runner.morph.ruleset import SOP_INSTANCE_UID, CompiledRule, RuleSet
from runner.morph.tables import LookupTable, TableError, load_table
from runner.morph.view import CHARSET_TAG
from runner.morph.vr import (
    NUMERIC_VRS,
    VALUE_VRS,
    count_problem,
    number_text,
    split_values,
    value_problem,
)
from runner.profile.morphing import MatchCondition, MorphRule

# Groups no rule may remove: command and file meta (not in the dataset), and the groups
# holding SOP Class/Instance UID, Specific Character Set, Study and Series Instance UID.
_PROTECTED_GROUPS = {0x0000: "the command group", 0x0002: "file meta information",
                     0x0008: "SOPInstanceUID, SOPClassUID and SpecificCharacterSet",
                     0x0020: "StudyInstanceUID and SeriesInstanceUID"}
_OPT_IN = ("set morphing_options.allow_uid_changes: true to allow it; the ledger then "
           "records each instance's source and destination SOP Instance UID")


def compile_rules(rules: Sequence[MorphRule], *, allow_uid_changes: bool = False,
                  charset_fallback: CharsetFallback = "keep") -> RuleSet:
    """Compile the rules in order; MorphConfigError names the first rule that cannot be used."""
    if charset_fallback not in FALLBACKS:
        raise ValueError(f"charset_fallback must be one of {', '.join(FALLBACKS)}")
    compiled = tuple(_RuleCompiler(i, allow_uid_changes).rule(rule)
                     for i, rule in enumerate(rules))
    return RuleSet(compiled, charset_fallback)


def rule_errors(rules: Sequence[MorphRule | None], *,
                allow_uid_changes: bool = False) -> list[MorphConfigError]:
    """Every problem of every rule (`compile_rules` stops at the first): each condition and
    each `set` value is compiled on its own, so that one `validate` reports them all.
    A None rule (invalid already, reported by the model) keeps the others' indexes."""
    errors: list[MorphConfigError] = []
    for index, rule in enumerate(rules):
        if rule is None:
            continue
        compiler = _RuleCompiler(index, allow_uid_changes)
        parts: list[Callable[[], object]] = [
            partial(compiler.condition, name, c) for name, c in (rule.when or {}).items()]
        if rule.set_ is not None:
            parts += [partial(compiler.assignment, n, v) for n, v in rule.set_.items()]
        else:
            parts.append(partial(compiler.action, rule))
        for part in parts:
            try:
                part()
            except MorphConfigError as error:
                errors.append(error)
    return errors


class _RuleCompiler:
    """Compiles one rule; every error it raises carries the rule's index."""

    def __init__(self, index: int, allow_uid_changes: bool) -> None:
        self.index = index
        self.allow_uid_changes = allow_uid_changes

    def error(self, message: str, key: Loc = ()) -> MorphConfigError:
        return MorphConfigError(self.index, message, key)

    def rule(self, rule: MorphRule) -> CompiledRule:
        conditions = tuple(self.condition(name, c) for name, c in (rule.when or {}).items())
        return CompiledRule(self.index, conditions, self.action(rule))

    # --- tags -----------------------------------------------------------------------------

    def tag(self, name: str, key: Loc) -> int:
        try:
            return resolve_tag(name)
        except ValueError as exc:
            raise self.error(str(exc), key) from None

    def readable(self, tag: int, key: Loc) -> None:
        vr = vr_of(tag)
        if vr is not None and vr not in VALUE_VRS:
            raise self.error(f"{describe_tag(tag)} has VR {vr}: its value cannot be compared "
                             "or copied as text", key)

    def writable(self, tag: int, key: Loc, *, any_vr: bool = False) -> str | None:
        """The tag's VR (None for a private tag); MorphConfigError if no rule may write it.

        `any_vr` allows every VR (sequences, binary values): a delete needs no value.
        """
        name = describe_tag(tag)
        if tag >> 16 in (0x0000, 0x0002) or tag & 0xFFFF == 0:
            raise self.error(f"{name} is not an attribute rules can change (command, file "
                             "meta information or group length)", key)
        if tag == CHARSET_TAG:
            raise self.error("SpecificCharacterSet is kept by the engine: values are written "
                             "in the instance's character set (see charset_fallback)", key)
        if tag in IDENTITY_TAGS and not self.allow_uid_changes:
            raise self.error(f"changing {name} changes the identity of the migrated "
                             f"instance: {_OPT_IN}", key)
        vr = vr_of(tag)
        if vr is not None and vr not in VALUE_VRS and not any_vr:
            raise self.error(f"{name} has VR {vr}: rules can only write text and numbers", key)
        return vr

    # --- conditions -----------------------------------------------------------------------

    def condition(self, name: str, condition: Any) -> Condition:
        key: Loc = ("when", name)
        tag = self.tag(name, key)
        if isinstance(condition, MatchCondition) and condition.exists is not None:
            return Exists(tag, condition.exists)
        self.readable(tag, key)
        if isinstance(condition, MatchCondition):
            return Matches(tag, self.regex(str(condition.matches), (*key, "matches")))
        values = condition if isinstance(condition, list) else [condition]
        expected = tuple(_text(v).strip(" ") for v in values)
        return OneOf(tag, expected, numeric=vr_of(tag) in NUMERIC_VRS)

    def regex(self, pattern: str, key: Loc) -> re.Pattern[str]:
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise self.error(f"invalid regular expression {pattern}: {exc}", key) from None

    # --- actions --------------------------------------------------------------------------

    def action(self, rule: MorphRule) -> Action:
        if rule.set_ is not None:
            return SetValues(tuple(self.assignment(n, v) for n, v in rule.set_.items()))
        if rule.delete is not None:
            return Delete(tuple(self.deletable(n, i) for i, n in enumerate(rule.delete)))
        if rule.replace is not None:
            return self.replace(rule.replace.tag, rule.replace.pattern, rule.replace.with_)
        if rule.map is not None:
            return self.map(rule.map.tag, self.table(rule.map.table), rule.map.missing)
        if rule.copy_ is not None:
            return self.copy(rule.copy_.from_, rule.copy_.to)
        if rule.remove_groups is not None:
            return RemoveGroups(tuple(self.group(g, i) for i, g in enumerate(rule.remove_groups)))
        if rule.remove_private:
            return RemovePrivate()
        raise self.error("the rule has no action")

    def assignment(self, name: str, value: Any) -> Assignment:
        key: Loc = ("set", name)
        tag = self.tag(name, key)
        vr = self.writable(tag, key)
        values = _set_values(vr, value)
        if tag == SOP_INSTANCE_UID or (tag in IDENTITY_TAGS and not values):
            raise self.error(f"setting {describe_tag(tag)} to one fixed value would give "
                             "every instance the same identity (or none)", key)
        for text in values:
            problem = value_problem(vr, text) if vr else None
            if problem:
                raise self.error(f"{describe_tag(tag)} cannot be set to '{text}': {problem}",
                                 key)
        problem = count_problem(tag, len(values))
        if problem:
            raise self.error(f"{describe_tag(tag)} cannot be set: {problem}", key)
        return Assignment(tag, vr, values)

    def deletable(self, name: str, position: int) -> int:
        key: Loc = ("delete", position)
        tag = self.tag(name, key)
        if tag in IDENTITY_TAGS:
            raise self.error(f"deleting {describe_tag(tag)} would leave an instance that "
                             "cannot be stored or matched", key)
        self.writable(tag, key, any_vr=True)
        return tag

    def replace(self, name: str, pattern: str, template: str) -> Replace:
        tag = self.tag(name, ("replace", "tag"))
        vr = self.writable(tag, ("replace", "tag"))
        compiled = self.regex(pattern, ("replace", "pattern"))
        try:
            _probe(compiled).expand(template)
        except (re.error, IndexError) as exc:
            raise self.error(f"'with' {template} does not fit pattern {pattern}: {exc}",
                             ("replace", "with")) from None
        return Replace(tag, vr, compiled, template)

    def table(self, path: Any) -> LookupTable:
        try:
            return load_table(path)
        except TableError as exc:
            raise self.error(f"lookup table {path}: {exc}", ("map", "table")) from None

    def map(self, name: str, table: LookupTable, missing: Any) -> MapValues:
        tag = self.tag(name, ("map", "tag"))
        vr = self.writable(tag, ("map", "tag"))
        for source, target in table.entries.items():
            problem = value_problem(vr, target) if vr and target else None
            if problem:
                raise self.error(f"lookup table {table.path}: line {table.lines[source]}: the "
                                 f"'to' value is not valid for {describe_tag(tag)}: {problem}",
                                 ("map", "table"))
        return MapValues(tag, vr, table, missing)

    def copy(self, source_name: str, target_name: str) -> Copy:
        source = self.tag(source_name, ("copy", "from"))
        self.readable(source, ("copy", "from"))
        target = self.tag(target_name, ("copy", "to"))
        if source == target:
            raise self.error(f"copies {describe_tag(source)} onto itself", ("copy", "to"))
        return Copy(source, target, self.writable(target, ("copy", "to")))

    def group(self, text: str, position: int) -> int:
        group = int(text, 16)
        if group in _PROTECTED_GROUPS:
            raise self.error(f"group {group:04X} holds {_PROTECTED_GROUPS[group]}: delete the "
                             "attributes you mean instead", ("remove_groups", position))
        return group


def _text(value: Any) -> str:
    return number_text(value) if isinstance(value, int | float) else str(value)


def _set_values(vr: str | None, value: Any) -> tuple[str, ...]:
    """A `set` value as text values: null is empty, a list is several values."""
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(_text(v).strip(" ") for v in value)
    return split_values(vr or "LO", _text(value))


def _probe(pattern: re.Pattern[str]) -> re.Match[str]:
    """A match with the same groups as `pattern`, to check a replacement template."""
    names = {index: name for name, index in pattern.groupindex.items()}
    groups = "".join(f"(?P<{names[i]}>)" if i in names else "()"
                     for i in range(1, pattern.groups + 1))
    match = re.match(groups, "")
    assert match is not None
    return match
