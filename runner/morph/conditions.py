"""Rule conditions (`when`): equal to one of some values, matching a regex, or present.

Values are compared as text without DICOM padding; for numeric VRs (IS, DS, US, FL, ...)
they are compared as numbers, so `1.50` equals `1.5`. A multi-valued element meets a
condition when any of its values does. An absent or empty element reads as the empty
string: `""` and `{matches: '^$'}` hold for it. `matches` uses `re.search`, like `replace`:
anchor with `^...$` to match the whole value. `exists: true` means present with a value
(an element that is empty or only padding does not exist).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from runner.dicomdict import describe_tag
from runner.morph.view import InstanceView


class Condition(Protocol):
    """One compiled condition of a rule's `when`."""

    @property
    def tag(self) -> int: ...

    def holds(self, view: InstanceView) -> bool:
        """Whether the instance, as earlier rules left it, meets the condition."""
        ...

    def describe(self) -> str:
        """The condition in plain words."""
        ...


@dataclass(frozen=True)
class OneOf:
    """The element equals one of the given values."""

    tag: int
    expected: tuple[str, ...]
    numeric: bool

    def holds(self, view: InstanceView) -> bool:
        values = view.values(self.tag) or ("",)
        return any(self._equal(value) for value in values)

    def _equal(self, value: str) -> bool:
        if value in self.expected:
            return True
        number = _number(value) if self.numeric else None
        return number is not None and any(_number(e) == number for e in self.expected)

    def describe(self) -> str:
        shown = [e if e else "empty" for e in self.expected]
        listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
        return f"{describe_tag(self.tag)} is {listed}"


@dataclass(frozen=True)
class Matches:
    """Some value of the element contains a match of the regular expression."""

    tag: int
    pattern: re.Pattern[str]

    def holds(self, view: InstanceView) -> bool:
        values = view.values(self.tag) or ("",)
        return any(self.pattern.search(value) for value in values)

    def describe(self) -> str:
        return f"{describe_tag(self.tag)} matches {self.pattern.pattern}"


@dataclass(frozen=True)
class Exists:
    """The element is present with a value (`present`), or absent or empty (not `present`)."""

    tag: int
    present: bool

    def holds(self, view: InstanceView) -> bool:
        return view.has_value(self.tag) == self.present

    def describe(self) -> str:
        name = describe_tag(self.tag)
        return f"{name} has a value" if self.present else f"{name} is absent or empty"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
