"""The morph engine: profile rules compiled once, applied to each instance on its way through.

    ruleset = compile_rules(profile.morphing, allow_uid_changes=False, charset_fallback="keep")
    result = ruleset.apply(ds)        # mutates ds unless result.failed
"""

from __future__ import annotations

from runner.morph.charset import CharsetFallback
from runner.morph.errors import MorphConfigError
from runner.morph.rules import compile_rules
from runner.morph.ruleset import CompiledRule, MorphResult, RuleSet, UidChange

__all__ = ["CharsetFallback", "CompiledRule", "MorphConfigError", "MorphResult", "RuleSet",
           "UidChange", "compile_rules"]
