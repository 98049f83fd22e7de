"""A compiled rule set and what applying it to one instance did (`MorphResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from pydicom.dataset import Dataset

from runner.dicomdict import IDENTITY_TAGS
from runner.morph.actions import (
    Action,
    Copy,
    MapValues,
    RemoveGroups,
    RemovePrivate,
    Replace,
    SetValues,
)
from runner.morph.charset import CharsetFallback
from runner.morph.conditions import Condition
from runner.morph.errors import InstanceFailure
from runner.morph.view import CHARSET_TAG, InstanceView

SOP_INSTANCE_UID = 0x00080018
PIXEL_DATA = 0x7FE00010
_WRITING_ACTIONS = (SetValues, Replace, MapValues, Copy)


@dataclass(frozen=True)
class CompiledRule:
    """One rule: its place in the profile, its conditions (all must hold) and its action."""

    index: int
    conditions: tuple[Condition, ...]
    action: Action

    def holds(self, view: InstanceView) -> bool:
        """Whether every condition holds for the instance as earlier rules left it."""
        return all(condition.holds(view) for condition in self.conditions)

    def describe(self) -> str:
        """The rule in plain words."""
        action = self.action.describe()
        if not self.conditions:
            return action[:1].upper() + action[1:]
        conditions = " and ".join(c.describe() for c in self.conditions)
        return f"If {conditions}: {action}"


class UidChange(NamedTuple):
    """An identity attribute the rules changed: its tag, the source and the new value."""

    tag: int
    source: str
    destination: str


@dataclass(frozen=True)
class MorphResult:
    """What applying the rules did to one instance.

    On failure the dataset is left exactly as it was and must not be sent; `fired` then
    lists the rules that would have changed it before the failing one.
    """

    fired: tuple[int, ...] = ()  # indexes of the rules that changed the instance
    changed_tags: frozenset[int] = frozenset()
    failed: str | None = None
    failed_rule: int | None = None
    uid_changes: tuple[UidChange, ...] = ()

    @property
    def ok(self) -> bool:
        """True unless the instance could not be morphed."""
        return self.failed is None

    @property
    def sop_instance_uid_change(self) -> UidChange | None:
        """The source -> destination SOP Instance UID pair, when the rules changed it."""
        return next((c for c in self.uid_changes if c.tag == SOP_INSTANCE_UID), None)


@dataclass(frozen=True)
class RuleSet:
    """The profile's morphing rules, compiled once; `apply` runs them on an instance.

    Immutable and without per-call state: one rule set can serve every forwarding thread.
    """

    rules: tuple[CompiledRule, ...]
    charset_fallback: CharsetFallback = "keep"

    @property
    def is_empty(self) -> bool:
        """True when there are no rules: instances pass through untouched."""
        return not self.rules

    @cached_property
    def touched_tags(self) -> frozenset[int]:
        """Every tag a rule may change, for verification at the destination.

        Private tags and whole groups are not listed: see `removes_private` and
        `removed_groups`. SpecificCharacterSet is listed when a fallback may declare it.
        """
        tags = frozenset().union(*(rule.action.touched for rule in self.rules))
        if self.charset_fallback != "keep" and any(
                isinstance(rule.action, _WRITING_ACTIONS) for rule in self.rules):
            tags |= {CHARSET_TAG}
        return tags

    @cached_property
    def reads_pixel_data(self) -> bool:
        """Whether a rule may read, change or remove Pixel Data (7FE0,0010).

        When none does, a forwarder may morph the other attributes and carry the pixel data
        as received (runner.dicom.split).
        """
        tags = set(self.touched_tags)
        for rule in self.rules:
            tags.update(condition.tag for condition in rule.conditions)
            source = getattr(rule.action, "source", None)
            if isinstance(source, int):
                tags.add(source)
        return PIXEL_DATA in tags or PIXEL_DATA >> 16 in self.removed_groups

    @property
    def removes_private(self) -> bool:
        """Whether a rule removes private tags."""
        return any(isinstance(rule.action, RemovePrivate) for rule in self.rules)

    @property
    def removed_groups(self) -> frozenset[int]:
        """The groups rules remove (numbers such as 0x0009)."""
        return frozenset(g for rule in self.rules if isinstance(rule.action, RemoveGroups)
                         for g in rule.action.groups)

    @cached_property
    def changes_identity(self) -> bool:
        """Whether a rule may change StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID."""
        return bool(self.touched_tags & IDENTITY_TAGS)

    def describe(self) -> list[str]:
        """Each rule in plain words, in order."""
        return [rule.describe() for rule in self.rules]

    def apply(self, ds: Dataset) -> MorphResult:
        """Run the rules in order on `ds`, changing it in place unless the instance fails."""
        if not self.rules:
            return MorphResult()
        view = InstanceView(ds, self.charset_fallback)
        fired: list[int] = []
        current: int | None = None
        try:
            before = self._identity(view)
            for rule in self.rules:
                current = rule.index
                if rule.holds(view) and rule.action.apply(view):
                    fired.append(rule.index)
            changes = self._uid_changes(before, self._identity(view))
        except InstanceFailure as failure:
            where = "" if current is None else f"rule {current}: "
            return MorphResult(tuple(fired), failed=where + failure.reason, failed_rule=current)
        return MorphResult(tuple(fired), view.commit(), uid_changes=changes)

    def may_touch(self, ds: Dataset) -> bool:
        """A dry run: whether `apply` would change (or fail) the instance. Changes nothing.

        A forwarder can skip re-encoding an instance for which this is False.
        """
        view = InstanceView(ds, self.charset_fallback)
        for rule in self.rules:
            try:
                if rule.holds(view) and rule.action.apply(view):
                    return True
            except InstanceFailure:
                return True
        return False

    def _identity(self, view: InstanceView) -> dict[int, str]:
        if not self.changes_identity:
            return {}
        return {tag: "\\".join(view.values(tag) or ()) for tag in sorted(IDENTITY_TAGS)}

    @staticmethod
    def _uid_changes(before: dict[int, str], after: dict[int, str]) -> tuple[UidChange, ...]:
        return tuple(UidChange(tag, before[tag], after[tag]) for tag in before
                     if before[tag] != after[tag])
