"""The morphed values an instance should have at the destination, and the check of them.

With `verify: instances` and rules that change values, the verification also asks the
destination for the tags the rules touch and compares them with what the rules made of the
received instance: a destination that silently kept an older copy under the same SOP
Instance UID is caught. Expected values are computed from the received instance's header
(no pixel data is read) right after the forward, before its space is given back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from runner.dicomdict import describe_tag, value_text
from runner.morph import RuleSet

Values = Mapping[int, str]


def expected_values(source: Callable[[], BinaryIO], rules: RuleSet,
                    tags: Sequence[int]) -> dict[int, str] | None:
    """What the rules make of the tags of the instance `source` opens (None if it cannot be
    read)."""
    try:
        with source() as stream:
            ds = dcmread(stream, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError):
        return None
    if not rules.apply(ds).ok:
        return None
    return {tag: value_text(ds, tag) for tag in tags}


@dataclass(frozen=True, slots=True)
class ValueCheck:
    """The outcome of comparing expected with found values."""

    different: frozenset[str]  # source SOP UIDs whose destination copy has other values
    unchecked: tuple[str, ...]  # tags the destination does not return (names)

    def detail(self) -> str:
        """For the ledger and the reports."""
        parts = []
        if self.different:
            parts.append(f"{len(self.different)} instances hold other values than the rules "
                         "made (a different version under the same SOP Instance UID?)")
        if self.unchecked:
            parts.append(f"not returned by the destination, so not checked: "
                         f"{', '.join(self.unchecked)}")
        return "; ".join(parts)


def compare_values(expected: Mapping[str, Values], found: Mapping[str, Values],
                   dest_of: Mapping[str, str]) -> ValueCheck:
    """Compare per instance; a tag the destination leaves empty everywhere is not checked."""
    present = [(sop, vals, found[dest_of.get(sop, sop)]) for sop, vals in expected.items()
               if dest_of.get(sop, sop) in found]
    tags = {tag for _, vals, _ in present for tag in vals}
    unchecked = {tag for tag in tags
                 if all(not got.get(tag) for _, _, got in present)
                 and any(vals.get(tag) for _, vals, _ in present)}
    different = frozenset(sop for sop, vals, got in present
                          if any(got.get(tag, "") != value for tag, value in vals.items()
                                 if tag not in unchecked))
    return ValueCheck(different, tuple(sorted(describe_tag(t) for t in unchecked)))
