"""`pacsmig morph-preview`: the rules tried on real headers from the source, before go-live.

The source is asked by C-FIND at image level, for a sample of studies spread over the
inventory, for exactly the attributes the rules read or write; no C-MOVE, nothing is sent
anywhere. For each rule: how many sampled instances it changes; for a few instances, the
values before and after (identifying values masked when `mask_identifiers`); and the
instances the rules would fail on, with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from runner.dicomdict import describe_tag, value_text
from runner.morph.actions import Copy, RemoveGroups, RemovePrivate
from runner.morph.ruleset import RuleSet

# Values never shown in clear when identifiers are masked.
IDENTIFYING = frozenset({0x00100010, 0x00100020, 0x00100030, 0x00101000, 0x00101001,
                         0x00080050, 0x00100021, 0x00101002})

Fetch = Callable[[str, Sequence[int]], list[Dataset]]  # study UID, keys -> image answers


@dataclass
class Preview:
    """What the rules did to the sampled instances."""

    rules: list[str]
    sampled: int = 0
    studies: int = 0
    fired: Counter[int] = field(default_factory=Counter)
    diffs: list[tuple[str, list[tuple[str, str, str]]]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    missing_keys: set[int] = field(default_factory=set)
    unjudged: list[tuple[int, str]] = field(default_factory=list)  # (rule index, why)
    masked: bool = True

    def lines(self) -> list[str]:
        """The preview for a person."""
        out = [f"Morphing preview on {self.sampled:,} instances of {self.studies:,} sampled "
               "studies (headers by C-FIND; nothing was moved or stored):", ""]
        for index, text in enumerate(self.rules):
            out.append(f"  {index + 1}. {text}: changes {self.fired[index]:,} of "
                       f"{self.sampled:,} instances")
        out += ["", "Before -> after, for a few instances:"]
        for who, changes in self.diffs or [("(none)", [])]:
            out.append(f"  instance {who}")
            out += [f"    {name}: {before!r} -> {after!r}" for name, before, after in changes]
        out += ["", f"Instances the rules would fail on: {len(self.failures):,}"]
        out += [f"  instance {who}: {reason}" for who, reason in self.failures[:20]]
        if self.unjudged:
            out += ["", "Rules this preview cannot judge from C-FIND headers:"]
            out += [f"  {index + 1}. {why}" for index, why in self.unjudged]
        if not self.masked:
            out += ["", "Identifiers are shown in clear (--show-identifiers): keep this "
                        "output on this machine."]
        if self.missing_keys:
            names = ", ".join(sorted(describe_tag(t) for t in self.missing_keys))
            out += ["", f"Note: the source returned no value for {names} in any sampled "
                        "instance; rules on them are previewed as if the values were empty."]
        return out


def rule_tags(rules: RuleSet) -> list[int]:
    """Every attribute the rules read (conditions, copy sources) or write."""
    tags = set(rules.touched_tags)
    for rule in rules.rules:
        tags |= {c.tag for c in rule.conditions if hasattr(c, "tag")}
        if isinstance(rule.action, Copy):
            tags.add(rule.action.source)
    return sorted(tags)


_FETCH_INSTEAD = ("C-FIND returns no private attributes and no whole groups: fetch sample "
                  "instances (C-GET, or C-MOVE to the listener) to preview it")


def unjudged_rules(rules: RuleSet) -> list[tuple[int, str]]:
    """The rules whose effect C-FIND answers cannot show, each with the reason."""
    found: list[tuple[int, str]] = []
    for index, rule in enumerate(rules.rules):
        action = rule.action
        tags = {c.tag for c in rule.conditions if hasattr(c, "tag")} | set(action.touched)
        tags |= {getattr(action, "source", 0)} - {0}
        if isinstance(action, RemovePrivate | RemoveGroups):
            found.append((index, f"{type(action).__name__}: {_FETCH_INSTEAD}"))
        elif any(tag >> 16 & 1 for tag in tags):
            found.append((index, f"a private attribute: {_FETCH_INSTEAD}"))
    return found


def preview(rules: RuleSet, study_uids: Sequence[str], fetch: Fetch, sample: int,
            masked: bool, show: int = 5) -> Preview:
    """Apply the rules to up to `sample` instances fetched from the given studies."""
    result = Preview(rules.describe(), unjudged=unjudged_rules(rules), masked=masked)
    keys = rule_tags(rules)
    seen_values: set[int] = set()
    for study_uid in study_uids:
        if result.sampled >= sample:
            break
        answers = fetch(study_uid, keys)[: sample - result.sampled]
        result.studies += 1 if answers else 0
        for answer in answers:
            seen_values |= {t for t in keys if value_text(answer, t)}
            _try(rules, answer, keys, masked, result, show)
    result.missing_keys = set(keys) - seen_values
    return result


def _try(rules: RuleSet, answer: Dataset, keys: Sequence[int], masked: bool,
         result: Preview, show: int) -> None:
    before = deepcopy(answer)
    outcome = rules.apply(answer)
    result.sampled += 1
    who = _who(str(before.get("SOPInstanceUID", "?")))
    result.fired.update(outcome.fired)  # on failure: the rules that fired before it
    if not outcome.ok:
        result.failures.append((who, outcome.failed or "failed"))
        return
    if outcome.fired and len(result.diffs) < show:
        changes = [(describe_tag(t), _shown(before, t, masked), _shown(answer, t, masked))
                   for t in keys if value_text(before, t) != value_text(answer, t)]
        result.diffs.append((who, changes))


def _who(sop_uid: str) -> str:
    return f"…{sop_uid[-12:]}" if len(sop_uid) > 12 else sop_uid


def _shown(ds: Dataset, tag: int, masked: bool) -> str:
    value = value_text(ds, tag)
    if not masked or tag not in IDENTIFYING or not value:
        return value
    return f"<masked, {len(value)} characters>"
