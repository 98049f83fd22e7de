"""The `morphing` section as the profile states it: each rule's condition and one action,
and the options; runner.morph compiles and applies them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from runner.profile.fields import DicomName, ExistingFile, Regex, Section

ConditionValue = str | int | float | list[str | int | float]


class MatchCondition(Section):
    """A condition other than equality: a regular expression, or presence."""

    matches: Regex | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> MatchCondition:
        if (self.matches is None) == (self.exists is None):
            raise PydanticCustomError(
                "condition", "a condition needs exactly one of 'matches' or 'exists'", {})
        return self


Condition = Annotated[ConditionValue | MatchCondition, Field(union_mode="left_to_right")]


class ReplaceSpec(Section):
    """Rewrite a value by regular expression (groups as \\1)."""

    tag: DicomName
    pattern: Regex
    with_: str = Field(alias="with")


class MapSpec(Section):
    """Map a value through a CSV lookup table with columns `from,to`."""

    tag: DicomName
    table: ExistingFile
    missing: Literal["keep", "fail", "blank"] = "keep"


class CopySpec(Section):
    """Copy one attribute's value into another."""

    from_: DicomName = Field(alias="from")
    to: DicomName


_ACTIONS = ("set", "delete", "replace", "map", "copy", "remove_private", "remove_groups")


class MorphRule(Section):
    """One rule: an optional condition (`when`) and exactly one action."""

    when: dict[DicomName, Condition] | None = None
    set_: dict[DicomName, str | int | float | list[str | int | float] | None] | None = Field(
        None, alias="set")
    delete: list[DicomName] | None = None
    replace: ReplaceSpec | None = None
    map: MapSpec | None = None
    copy_: CopySpec | None = Field(None, alias="copy")
    remove_private: Literal[True] | None = None
    remove_groups: list[Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{4}$")]] | None = None

    @model_validator(mode="after")
    def _exactly_one_action(self) -> MorphRule:
        given = [a for a in _ACTIONS if getattr(self, _field_name(a)) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "rule_action", "a morphing rule needs exactly one action of {actions}; found {n}",
                {"actions": ", ".join(_ACTIONS), "n": ", ".join(given) or "none"})
        return self

    @property
    def action(self) -> str:
        """The name of this rule's action."""
        return next(a for a in _ACTIONS if getattr(self, _field_name(a)) is not None)


def _field_name(action: str) -> str:
    return {"set": "set_", "copy": "copy_"}.get(action, action)


class MorphOptions(Section):
    """How the rules treat identities and character sets (see runner.morph)."""

    allow_uid_changes: bool = Field(
        False, description="let rules change Study/Series/SOP Instance UIDs; the ledger then "
                           "maps each source UID to its destination UID for verification")
    charset_fallback: Literal["keep", "latin1", "utf8"] = Field(
        "keep", description="instances with a missing or wrong character set: keep the bytes "
                            "(default), or read them as Latin-1 / UTF-8")
