"""Tests of the throttle formula language: what it accepts, rejects, and computes."""

from __future__ import annotations

import math
import pickle

import pytest

from runner.profile.formula import (
    DEFAULT_CAP_SECONDS,
    FORMULA_NAMES,
    MAX_SOURCE_CHARS,
    FormulaError,
    parse_formula,
)


def _error(src: str | int | float) -> FormulaError:
    with pytest.raises(FormulaError) as caught:
        parse_formula(src)
    return caught.value


# ---- the profile's example formulas ---------------------------------------------------


@pytest.mark.parametrize(
    ("src", "study_mb", "expected"),
    [
        ("60 + study_mb * 2", 0.0, 60.0),
        ("60 + study_mb * 2", 100.0, 260.0),
        ("10 + study_mb / 35 * 20", 70.0, 50.0),
        ("10 + study_mb / 35 * 20", 0.0, 10.0),
        ("max(2, study_mb / 35 * 5)", 7.0, 2.0),
        ("max(2, study_mb / 35 * 5)", 700.0, 100.0),
    ],
)
def test_example_formulas_compute_their_delay(src: str, study_mb: float, expected: float) -> None:
    assert parse_formula(src).seconds({"study_mb": study_mb}) == pytest.approx(expected)


def test_formula_reports_the_names_it_uses() -> None:
    formula = parse_formula("min(study_mb, spool_gb) + in_flight * 0")
    assert formula.names == frozenset({"study_mb", "spool_gb", "in_flight"})
    assert formula.source == "min(study_mb, spool_gb) + in_flight * 0"


def test_every_documented_name_is_accepted() -> None:
    assert sorted(FORMULA_NAMES) == [
        "device_mb_per_s",
        "in_flight",
        "spool_gb",
        "study_instances",
        "study_mb",
    ]
    formula = parse_formula(" + ".join(sorted(FORMULA_NAMES)))
    assert formula.names == FORMULA_NAMES
    assert formula.evaluate(dict.fromkeys(FORMULA_NAMES, 1.5)) == 7.5


@pytest.mark.parametrize(("number", "expected"), [(60, 60.0), (2.5, 2.5), (0, 0.0)])
def test_plain_number_is_a_formula(number: int | float, expected: float) -> None:
    formula = parse_formula(number)
    assert formula.names == frozenset()
    assert formula.seconds({}) == expected


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("-3 + +5", 2.0),
        ("-(1 + 2) * -3", 9.0),
        ("1 - (2 - 3)", 2.0),
        ("(1 - 2) - 3", -4.0),
        ("8 / 4 / 2", 1.0),
        ("min(3)", 3.0),
        ("min(3, 1, 2)", 1.0),
        ("max(3, 1, 2)", 3.0),
        ("max(min(4, 9), 1) * 2", 8.0),
        ("1_000 + 1e3 + 0.5", 2000.5),
        ("  \t7\n+\r\n1  ", 8.0),
    ],
)
def test_arithmetic_follows_usual_precedence(src: str, expected: float) -> None:
    assert parse_formula(src).evaluate({}) == expected


def test_missing_names_count_as_zero() -> None:
    assert parse_formula("5 + study_mb * 100").evaluate({}) == 5.0


def test_values_may_be_integers() -> None:
    assert parse_formula("study_instances / 2").evaluate({"study_instances": 3}) == 1.5


def test_formula_compiles_once_and_is_reused() -> None:
    formula = parse_formula("10 + study_mb")
    assert [formula.seconds({"study_mb": mb}) for mb in (1.0, 2.0, 3.0)] == [11.0, 12.0, 13.0]


def test_formula_survives_pickling() -> None:
    formula = parse_formula("max(2, study_mb / 35 * 5)")
    copy = pickle.loads(pickle.dumps(formula))
    assert copy == formula
    assert copy.seconds({"study_mb": 70.0}) == 10.0


# ---- describe --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "words"),
    [
        ("60+study_mb*2", "60 + study_mb × 2 seconds"),
        ("max(2,study_mb/35*5)", "max(2, study_mb ÷ 35 × 5) seconds"),
        ("((1 - 2)) - 3", "1 - 2 - 3 seconds"),
        ("1 - (2 - 3)", "1 - (2 - 3) seconds"),
        ("(1 + 2) * 3", "(1 + 2) × 3 seconds"),
        ("-(-3)", "-(-3) seconds"),
        (2.5, "2.5 seconds"),
    ],
)
def test_describe_normalises_spacing_and_keeps_needed_parentheses(
    src: str | float, words: str
) -> None:
    assert parse_formula(src).describe() == words


# ---- clamping: seconds() never raises -------------------------------------------------


@pytest.mark.parametrize(
    ("src", "values", "expected"),
    [
        ("study_mb / 0", {"study_mb": 5.0}, DEFAULT_CAP_SECONDS),
        ("0 / 0", {}, DEFAULT_CAP_SECONDS),
        ("10 / device_mb_per_s", {}, DEFAULT_CAP_SECONDS),
        ("min(1, 1 / in_flight)", {"in_flight": 0.0}, DEFAULT_CAP_SECONDS),
        ("study_mb", {"study_mb": math.inf}, DEFAULT_CAP_SECONDS),
        ("-study_mb", {"study_mb": math.inf}, DEFAULT_CAP_SECONDS),
        ("study_mb", {"study_mb": math.nan}, DEFAULT_CAP_SECONDS),
        ("max(study_mb, 1)", {"study_mb": math.nan}, DEFAULT_CAP_SECONDS),
        ("max(1, study_mb)", {"study_mb": math.nan}, DEFAULT_CAP_SECONDS),
        ("study_mb * study_mb", {"study_mb": 1e200}, DEFAULT_CAP_SECONDS),
        ("study_mb / 3", {"study_mb": 10**400}, DEFAULT_CAP_SECONDS),
        ("1e6", {}, DEFAULT_CAP_SECONDS),
        ("-5", {}, 0.0),
        ("-study_mb", {"study_mb": 0.0}, 0.0),
        ("study_mb - 100", {"study_mb": 1.0}, 0.0),
    ],
)
def test_seconds_clamps_to_zero_and_treats_undefined_as_the_cap(
    src: str, values: dict[str, float], expected: float
) -> None:
    result = parse_formula(src).seconds(values)
    assert result == expected
    assert math.copysign(1.0, result) == 1.0


def test_seconds_respects_a_given_cap() -> None:
    formula = parse_formula("study_mb * 2")
    assert formula.seconds({"study_mb": 100.0}, cap=60.0) == 60.0
    assert formula.seconds({"study_mb": 10.0}, cap=60.0) == 20.0
    assert parse_formula("1 / 0").seconds({}, cap=5.0) == 5.0


@pytest.mark.parametrize("cap", [-1.0, math.inf, math.nan])
def test_seconds_refuses_a_cap_that_is_not_a_finite_duration(cap: float) -> None:
    with pytest.raises(ValueError, match="cap"):
        parse_formula("1").seconds({}, cap=cap)


def test_evaluate_gives_nan_for_division_by_zero() -> None:
    assert math.isnan(parse_formula("1 / study_mb").evaluate({"study_mb": 0.0}))


# ---- rejected constructs, each with its column ----------------------------------------


@pytest.mark.parametrize(
    ("src", "column", "fragment"),
    [
        ("study_mb ** 2", 10, "`**` (power) is not allowed in a formula; use + - * /"),
        ("2 + (study_mb) ** 2", 16, "`**` (power)"),
        ("7 // 2", 3, "`//` (floor division)"),
        ("7 % 2", 3, "`%` (remainder)"),
        ("1 | 2", 3, "`|`"),
        ("1 << 2", 3, "`<<`"),
        ("study_size + 1", 1, "unknown name 'study_size'"),
        ("1 + foo", 5, "known names: device_mb_per_s, in_flight, spool_gb"),
        ("study_mbs", 1, "did you mean 'study_mb'?"),
        ("1 + os.system", 5, "attribute access 'os.system' is not allowed"),
        ("os.system('ls')", 1, "attribute access 'os.system' is not allowed"),
        ("study_mb[0]", 1, "subscript"),
        ("'60'", 1, "strings are not allowed"),
        ("1 + f'{study_mb}'", 5, "strings are not allowed"),
        ("b'1'", 1, "strings are not allowed"),
        ("abs(-1)", 1, "function 'abs' is not allowed; only min and max"),
        ("1 + __import__('os')", 5, "function '__import__' is not allowed"),
        ("(lambda: 1)()", 2, "lambda is not allowed"),
        ("1 + (lambda: 1)", 6, "lambda is not allowed"),
        ("study_mb > 5", 1, "comparisons are not allowed"),
        ("1 and 2", 1, "'and' / 'or' are not allowed"),
        ("not 1", 1, "'not' is not allowed"),
        ("~1", 1, "`~`"),
        ("1 if study_mb else 2", 1, "conditional expressions"),
        ("True", 1, "booleans (True/False) are not allowed"),
        ("1 + False", 5, "booleans (True/False) are not allowed"),
        ("None", 1, "None is not allowed"),
        ("2j", 1, "complex numbers"),
        ("...", 1, "'...' is not allowed"),
        ("[1]", 1, "lists"),
        ("{1: 2}", 1, "braces"),
        ("1, 2", 1, "only allowed inside min(...) or max(...)"),
        ("(x := 1)", 2, "assignment (:=)"),
        ("max(*[1])", 5, "star arguments"),
        ("[x for x in study_mb]", 1, "comprehensions"),
        ("min()", 1, "min() needs at least one value"),
        ("max(1, default=2)", 8, "max() takes no keyword arguments"),
        ("min", 1, "'min' must be called"),
        ("study_mb(2)", 1, "function 'study_mb' is not allowed"),
        ("(1)(2)", 1, "only min(...) and max(...) may be called"),
        ("1e999", 1, "number is too large"),
        ("9" * 400, 1, "number is too large"),
        ("  1 + x", 7, "unknown name 'x'"),
    ],
)
def test_disallowed_construct_is_named_at_its_column(src: str, column: int, fragment: str) -> None:
    error = _error(src)
    assert fragment in error.message
    assert error.column == column


@pytest.mark.parametrize(
    ("src", "column", "fragment"),
    [
        ("1 +", 4, "syntax error: the formula ends too early"),
        ("  1 *", 6, "the formula ends too early"),
        ("(1 + 2", 1, "'(' was never closed"),
        ("1 + 2)", 6, "unmatched ')'"),
        ("study_mb x 2", 10, "syntax error: invalid syntax"),
        ("1; 2", 2, "syntax error"),
        ("08", 1, "leading zeros"),
        ("'abc", 1, "unterminated string"),
        ("1 × 2", 3, "character '×' is not allowed; write '*' instead"),
        ("1 − 2", 3, "write '-' instead"),
        ("1 +\u00a02", 4, "U+00A0 is not allowed"),
        ("1\x00", 2, "U+0000 is not allowed"),
        ("60 # per study", 4, "character '#' is not allowed"),
        ("1 \\ 2", 3, "character '\\' is not allowed"),
    ],
)
def test_unreadable_text_reports_a_syntax_error_with_its_column(
    src: str, column: int, fragment: str
) -> None:
    error = _error(src)
    assert fragment in error.message
    assert error.column == column


@pytest.mark.parametrize("src", ["", "   ", "\n\t"])
def test_empty_formula_is_an_error(src: str) -> None:
    assert "empty formula" in _error(src).message


@pytest.mark.parametrize(
    ("src", "fragment"),
    [(True, "booleans"), (math.inf, "finite"), (math.nan, "finite")],
)
def test_plain_value_that_is_not_a_usable_number_is_an_error(
    src: bool | float, fragment: str
) -> None:
    assert fragment in _error(src).message


def test_value_that_is_neither_text_nor_number_is_an_error() -> None:
    assert "text or a number" in _error([1, 2]).message  # type: ignore[arg-type]


def test_source_longer_than_the_cap_is_an_error() -> None:
    parse_formula("1" + " + 1" * ((MAX_SOURCE_CHARS - 1) // 4 // 4))
    error = _error("1" + " " * MAX_SOURCE_CHARS)
    assert f"at most {MAX_SOURCE_CHARS}" in error.message
    assert error.column == MAX_SOURCE_CHARS + 1


@pytest.mark.parametrize(
    "src",
    [
        "-" * 400 + "1",
        "(" * 240 + "1" + ")" * 240,
        "min(" * 70 + "1" + ")" * 70,
        "1" + "+1" * 200,
        "(1+" * 120 + "1" + ")" * 120,
    ],
)
def test_deep_nesting_is_a_formula_error_not_a_crash(src: str) -> None:
    assert len(src) <= MAX_SOURCE_CHARS
    error = _error(src)
    assert "too complex" in error.message or "nested" in error.message


def test_modest_nesting_is_accepted() -> None:
    src = "(" * 30 + "study_mb" + " + 1)" * 30
    assert parse_formula(src).evaluate({"study_mb": 1.0}) == 31.0


def test_formula_error_says_where_in_its_text() -> None:
    error = _error("1 + nope")
    assert str(error).startswith("column 5: unknown name 'nope'")
