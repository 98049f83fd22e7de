"""Property tests of the formula language: no input crashes it, valid ones always compute."""

from __future__ import annotations

import ast
import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from runner.profile.formula import (
    DEFAULT_CAP_SECONDS,
    FORMULA_NAMES,
    MAX_SOURCE_CHARS,
    FormulaError,
    parse_formula,
)

_NAMES = sorted(FORMULA_NAMES)
_SYMBOLS = "min( max( abs( ( ) , + - * / ** // % 0 1 35 2.5 1e3 1e999 08 . ' \" [ ] { } : ="
_WORDS = ":= < lambda not and if else for in True None os _ \\ # @ ~ j × yield await"
_TOKENS = [*_NAMES, *_SYMBOLS.split(), *_WORDS.split(), " ", "\t", "\n", "\x00"]
_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
_VALUES = st.dictionaries(st.sampled_from(_NAMES), _ANY_FLOAT | st.sampled_from([0.0, -0.0]))
_CAPS = st.floats(min_value=0.0, max_value=1e12)


def _parse_or_formula_error(src: str) -> None:
    try:
        formula = parse_formula(src)
    except FormulaError as error:
        assert 1 <= error.column <= max(len(src), MAX_SOURCE_CHARS) + 1
        assert error.message
    else:
        assert formula.source == src


@given(st.text(max_size=600))
@settings(max_examples=300)
def test_arbitrary_text_raises_nothing_but_formula_error(src: str) -> None:
    _parse_or_formula_error(src)


@given(st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join))
@settings(max_examples=600)
def test_token_soup_raises_nothing_but_formula_error(src: str) -> None:
    _parse_or_formula_error(src)


@given(st.integers(min_value=1, max_value=300), st.sampled_from(["(", "-", "min(", "(1+", "+"]))
def test_any_nesting_raises_nothing_but_formula_error(depth: int, opener: str) -> None:
    closer = ")" if "(" in opener else ""
    _parse_or_formula_error(opener * depth + "1" + closer * depth)


def _number() -> st.SearchStrategy[str]:
    integers = st.integers(min_value=0, max_value=10**9).map(str)
    floats = st.floats(min_value=0.0, max_value=1e300, allow_nan=False).map(repr)
    return integers | floats


def _leaf() -> st.SearchStrategy[str]:
    return _number() | st.sampled_from(_NAMES)


@st.composite
def _formula(draw: st.DrawFn, budget: int = 5) -> str:
    """A formula from the grammar, at most `budget` levels deep."""
    kind = draw(st.sampled_from(["leaf", "binary", "unary", "call", "parens"]))
    if budget == 0 or kind == "leaf":
        return draw(_leaf())
    if kind == "binary":
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        space = draw(st.sampled_from(["", " "]))
        left, right = draw(_formula(budget - 1)), draw(_formula(budget - 1))
        return f"{left}{space}{op}{space}{right}"
    if kind == "unary":
        return draw(st.sampled_from(["-", "+"])) + draw(_formula(budget - 1))
    if kind == "parens":
        return f"({draw(_formula(budget - 1))})"
    args = draw(st.lists(_formula(budget - 1), min_size=1, max_size=3))
    return f"{draw(st.sampled_from(['min', 'max']))}({', '.join(args)})"


@given(_formula(), _VALUES, _CAPS)
@settings(max_examples=400)
def test_valid_formula_always_parses_and_seconds_is_within_bounds(
    src: str, values: dict[str, float], cap: float
) -> None:
    assume(len(src) <= MAX_SOURCE_CHARS)
    formula = parse_formula(src)
    assert formula.names <= FORMULA_NAMES
    for seconds in (formula.seconds(values), formula.seconds(values, cap=cap)):
        assert math.isfinite(seconds)
    assert 0.0 <= formula.seconds(values) <= DEFAULT_CAP_SECONDS
    assert 0.0 <= formula.seconds(values, cap=cap) <= cap


@given(_formula(), st.dictionaries(st.sampled_from(_NAMES), st.integers(0, 10**6)))
def test_valid_formula_agrees_with_python_arithmetic_where_defined(
    src: str, values: dict[str, int]
) -> None:
    assume(len(src) <= MAX_SOURCE_CHARS)
    expected = _reference(src, {name: float(values.get(name, 0)) for name in _NAMES})
    actual = parse_formula(src).evaluate({k: float(v) for k, v in values.items()})
    if expected is None:
        assert math.isnan(actual)
    else:
        assert actual == expected or (math.isnan(actual) and math.isnan(expected))


def _reference(src: str, names: dict[str, float]) -> float | None:
    """An independent evaluation by walking Python's own AST (test oracle only)."""
    try:
        return _walk(ast.parse(src.strip(), mode="eval").body, names)
    except (ZeroDivisionError, OverflowError):
        return None


def _walk(node: ast.expr, names: dict[str, float]) -> float:
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int | float)
        return float(node.value)
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.UnaryOp):
        value = _walk(node.operand, names)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _walk(node.left, names), _walk(node.right, names)
        operations = {ast.Add: left.__add__, ast.Sub: left.__sub__, ast.Mult: left.__mul__}
        operation = operations.get(type(node.op))
        return operation(right) if operation else left / right
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    args = [_walk(arg, names) for arg in node.args]
    if any(math.isnan(arg) for arg in args):
        return math.nan
    return min(args) if node.func.id == "min" else max(args)
