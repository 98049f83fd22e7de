"""Rule actions: what each kind of rule does to an instance, and how it reads to people.

Every action reads and writes through an `InstanceView`, returns whether it changed
anything, and raises `InstanceFailure` when the instance cannot be morphed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from runner.dicomdict import describe_tag
from runner.morph.errors import InstanceFailure
from runner.morph.private import strip_private
from runner.morph.tables import LookupTable
from runner.morph.view import InstanceView
from runner.morph.vr import VALUE_VRS

Missing = Literal["keep", "fail", "blank"]
_WHEN_MISSING = {"keep": "keep the value", "fail": "fail the instance",
                 "blank": "blank the value"}


class Action(Protocol):
    """One compiled action."""

    @property
    def touched(self) -> frozenset[int]:
        """The tags this action may change (private tags and groups aside)."""
        ...

    def apply(self, view: InstanceView) -> bool:
        """Do it; True when the instance changed."""
        ...

    def describe(self) -> str:
        """The action in plain words, starting in lower case."""
        ...


def target_vr(view: InstanceView, tag: int, static_vr: str | None) -> str:
    """The VR to write: the dictionary's, or for a private tag the VR it has now."""
    if static_vr is not None:
        return static_vr
    vr = view.vr(tag)
    if vr is None:
        raise InstanceFailure(f"{describe_tag(tag)} is a private tag absent from this "
                              "instance: its VR is unknown, so it cannot be created")
    if vr not in VALUE_VRS:
        raise InstanceFailure(f"{describe_tag(tag)} has VR {vr}: rules write text and numbers")
    return vr


@dataclass(frozen=True)
class Assignment:
    """One `set` entry: the tag, its VR if known statically, and its new values."""

    tag: int
    vr: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class SetValues:
    """`set`: give attributes fixed values (no values: empty)."""

    assignments: tuple[Assignment, ...]

    @property
    def touched(self) -> frozenset[int]:
        return frozenset(a.tag for a in self.assignments)

    def apply(self, view: InstanceView) -> bool:
        changed = False
        for a in self.assignments:
            changed = view.put(a.tag, target_vr(view, a.tag, a.vr), a.values) or changed
        return changed

    def describe(self) -> str:
        parts = [f"{describe_tag(a.tag)} to {_shown(a.values)}" for a in self.assignments]
        return "set " + _joined(parts)


@dataclass(frozen=True)
class Delete:
    """`delete`: remove attributes."""

    tags: tuple[int, ...]

    @property
    def touched(self) -> frozenset[int]:
        return frozenset(self.tags)

    def apply(self, view: InstanceView) -> bool:
        changed = False
        for tag in self.tags:
            changed = view.remove(tag) or changed
        return changed

    def describe(self) -> str:
        return "delete " + _joined([describe_tag(t) for t in self.tags])


@dataclass(frozen=True)
class Replace:
    """`replace`: rewrite every match of a regex in each value (`re.sub`, groups as \\1).

    An empty element is the single value ""; an absent one is left absent.
    """

    tag: int
    vr: str | None
    pattern: re.Pattern[str]
    template: str

    @property
    def touched(self) -> frozenset[int]:
        return frozenset({self.tag})

    def apply(self, view: InstanceView) -> bool:
        values = view.values(self.tag)
        if values is None:
            return False
        new = tuple(self.pattern.sub(self.template, v) for v in values or ("",))
        if new == (values or ("",)):
            return False
        return view.put(self.tag, target_vr(view, self.tag, self.vr), _no_empty(new))

    def describe(self) -> str:
        return (f"replace {describe_tag(self.tag)} matching {self.pattern.pattern} "
                f"with {self.template}")


@dataclass(frozen=True)
class MapValues:
    """`map`: look each value up in a table; `missing` says what to do with the others."""

    tag: int
    vr: str | None
    table: LookupTable
    missing: Missing

    @property
    def touched(self) -> frozenset[int]:
        return frozenset({self.tag})

    def apply(self, view: InstanceView) -> bool:
        values = view.values(self.tag)
        if not values:
            return False
        new = tuple(self._mapped(v) for v in values)
        if new == values:
            return False
        return view.put(self.tag, target_vr(view, self.tag, self.vr), _no_empty(new))

    def _mapped(self, value: str) -> str:
        if value in self.table.entries:
            return self.table.entries[value]
        if self.missing == "fail":
            raise InstanceFailure(f"{describe_tag(self.tag)} has a value that is not in "
                                  f"{_shown_path(self.table.path)} (missing: fail)")
        return value if self.missing == "keep" else ""

    def describe(self) -> str:
        count = len(self.table)
        entries = f"{count} {'entry' if count == 1 else 'entries'}"
        return (f"map {describe_tag(self.tag)} through {_shown_path(self.table.path)} "
                f"({entries}); {_WHEN_MISSING[self.missing]} when missing")


@dataclass(frozen=True)
class Copy:
    """`copy`: give one attribute the values of another; nothing when the source is absent."""

    source: int
    target: int
    vr: str | None

    @property
    def touched(self) -> frozenset[int]:
        return frozenset({self.target})

    def apply(self, view: InstanceView) -> bool:
        values = view.values(self.source)
        if values is None:
            return False
        return view.put(self.target, target_vr(view, self.target, self.vr), values)

    def describe(self) -> str:
        return f"copy {describe_tag(self.source)} to {describe_tag(self.target)}"


@dataclass(frozen=True)
class RemovePrivate:
    """`remove_private`: remove every private tag, inside sequences too."""

    @property
    def touched(self) -> frozenset[int]:
        return frozenset()

    def apply(self, view: InstanceView) -> bool:
        return strip_private(view)

    def describe(self) -> str:
        return "remove all private tags"


@dataclass(frozen=True)
class RemoveGroups:
    """`remove_groups`: remove every top-level attribute of the given groups."""

    groups: tuple[int, ...]

    @property
    def touched(self) -> frozenset[int]:
        return frozenset()

    def apply(self, view: InstanceView) -> bool:
        changed = False
        for tag, _ in view.elements():
            if tag >> 16 in self.groups:
                changed = view.remove(tag) or changed
        return changed

    def describe(self) -> str:
        names = [f"{g:04X}" for g in self.groups]
        return f"remove group{'s' if len(names) > 1 else ''} {_joined(names)}"


def _no_empty(values: tuple[str, ...]) -> tuple[str, ...]:
    """A single empty value is an empty element."""
    return () if values == ("",) else values


def _shown(values: tuple[str, ...]) -> str:
    return "empty" if not values else "'" + "\\".join(values) + "'"


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _shown_path(path: Path) -> str:
    """A table path relative to the working directory when it lies under it."""
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()
