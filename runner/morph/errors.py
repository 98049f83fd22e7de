"""The morph engine's errors: a rule that cannot be compiled, and an instance it cannot morph."""

from __future__ import annotations

from runner.errors import InputError, Problem

Loc = tuple[str | int, ...]


class MorphConfigError(InputError):
    """A morphing rule that cannot be used.

    `rule_index` is the rule's 0-based place in the profile's `morphing` list; `loc` is the
    document location (`("morphing", 2, "set", "Rows")`) a profile loader can turn into a
    line and column. Until it does, the problem's path is `morphing[2]`.
    """

    def __init__(self, rule_index: int, message: str, key: Loc = ()) -> None:
        self.rule_index = rule_index
        self.message = message
        self.loc: Loc = ("morphing", rule_index, *key)
        super().__init__([Problem(f"morphing[{rule_index}]", 1, 1, message)])

    def __str__(self) -> str:
        return f"morphing[{self.rule_index}]: {self.message}"


class InstanceFailure(Exception):
    """Internal: this instance cannot be morphed; `RuleSet.apply` turns it into data."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
