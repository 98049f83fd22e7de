"""The throttle formula language: parsed by an AST whitelist into closures, never eval'd."""

from __future__ import annotations

import ast
import difflib
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

FORMULA_NAMES: frozenset[str] = frozenset(
    {"study_mb", "study_instances", "in_flight", "spool_gb", "device_mb_per_s"}
)
FUNCTIONS: frozenset[str] = frozenset({"min", "max"})
MAX_SOURCE_CHARS = 500
MAX_DEPTH = 64
MAX_NODES = 256
DEFAULT_CAP_SECONDS = 86400.0

_ALLOWED_HINT = "use + - * / ( ) min max"
_KNOWN_NAMES = ", ".join(sorted(FORMULA_NAMES))

Values = Mapping[str, float]
Evaluator = Callable[[Values], float]


class FormulaError(Exception):
    """A formula that cannot be used; `column` is 1-based within the formula's text."""

    def __init__(self, message: str, column: int = 1) -> None:
        self.message = message
        self.column = column
        super().__init__(f"column {column}: {message}")


@dataclass(frozen=True, slots=True)
class Formula:
    """A parsed formula, compiled once; evaluating it never parses again.

    Names missing from `values` count as 0.0 (a missing measurement is "nothing yet").
    """

    source: str
    names: frozenset[str]
    _text: str = field(repr=False, compare=False)
    _evaluate: Evaluator = field(repr=False, compare=False)

    def evaluate(self, values: Values) -> float:
        """The raw value: IEEE float arithmetic, except that division by zero or an
        overflow gives nan (undefined). Missing names count as 0.0."""
        try:
            return float(self._evaluate(values))
        except (ZeroDivisionError, OverflowError):
            return math.nan

    def seconds(self, values: Values, cap: float = DEFAULT_CAP_SECONDS) -> float:
        """The delay in seconds, in [0, cap]; never raises for any numeric `values`.

        Undefined results (division by zero, inf, nan) are treated as the longest delay,
        `cap`: the safe side. Negative results are 0.0; results above `cap` are `cap`.
        """
        if not 0.0 <= cap < math.inf:
            raise ValueError(f"cap must be a finite number of seconds >= 0, got {cap!r}")
        value = self.evaluate(values)
        if not math.isfinite(value) or value >= cap:
            return float(cap)
        return value if value > 0.0 else 0.0

    def __reduce__(self) -> tuple[Callable[[str], Formula], tuple[str]]:
        """Pickled as its source: the closures are rebuilt by parsing it again."""
        return parse_formula, (self.source,)

    def describe(self) -> str:
        """The formula in words for a plan preview, e.g. '60 + study_mb × 2 seconds'."""
        return f"{self._text} seconds"


def parse_formula(src: str | int | float) -> Formula:
    """Parse and compile a formula (text, or a plain number); raises FormulaError."""
    text = _source_text(src)
    stripped, offset, body = _parse(text)
    compiler = _Compiler(stripped, offset)
    compiled = compiler.compile(body, 1)
    return Formula(text, frozenset(compiler.names), compiled.text, compiled.fn)


# ---- source checks and parsing -------------------------------------------------------

_LOOKALIKES = {"×": "*", "÷": "/", "−": "-", "–": "-", "—": "-", "·": "*"}


def _source_text(src: object) -> str:
    """The formula's text: a string as given, or a plain number written out."""
    if isinstance(src, bool):
        raise FormulaError("booleans (true/false) are not allowed; write a number")
    if isinstance(src, int | float):
        if isinstance(src, float) and not math.isfinite(src):
            raise FormulaError(f"the number {src!r} is not allowed; write a finite number")
        return repr(src)
    if not isinstance(src, str):
        raise FormulaError(f"a formula must be text or a number, not {type(src).__name__}")
    return src


def _parse(text: str) -> tuple[str, int, ast.expr]:
    """Check the characters, then parse; returns (text parsed, leading spaces, expression)."""
    if len(text) > MAX_SOURCE_CHARS:
        raise FormulaError(
            f"formula is {len(text)} characters long; at most {MAX_SOURCE_CHARS} are allowed",
            MAX_SOURCE_CHARS + 1,
        )
    flat = text.translate({9: " ", 10: " ", 13: " "})
    _check_characters(flat)
    stripped = flat.lstrip(" ")
    if not stripped.strip():
        raise FormulaError("empty formula; write a number or an expression such as 60 + study_mb")
    offset = len(flat) - len(stripped)
    try:
        with warnings.catch_warnings():  # e.g. SyntaxWarning for "1(2)": we report it ourselves
            warnings.simplefilter("ignore")
            return stripped, offset, ast.parse(stripped, mode="eval").body
    except SyntaxError as exc:
        raise _syntax_error(exc, stripped, offset) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # defensive: parser limits
        raise FormulaError(f"formula cannot be read: {exc}", offset + 1) from None


def _check_characters(flat: str) -> None:
    """Only printable ASCII, and no comments: anything else gets a clear message."""
    for index, char in enumerate(flat):
        if " " <= char <= "~" and char not in "#\\":
            continue
        column = index + 1
        if char in "#\\":
            raise FormulaError(f"character '{char}' is not allowed in a formula", column)
        if char in _LOOKALIKES:
            raise FormulaError(
                f"character '{char}' is not allowed; write '{_LOOKALIKES[char]}' instead", column
            )
        raise FormulaError(
            f"character U+{ord(char):04X} is not allowed; a formula is plain ASCII text "
            f"({_ALLOWED_HINT})",
            column,
        )


def _syntax_error(exc: SyntaxError, stripped: str, offset: int) -> FormulaError:
    """Python's message without its hints (which suggest Python, not formulas)."""
    message = (exc.msg or "invalid syntax").split(". ")[0]
    position = exc.offset or 0
    if position < 1 or position > len(stripped):
        end = len(stripped.rstrip())
        return FormulaError("syntax error: the formula ends too early", offset + end + 1)
    return FormulaError(f"syntax error: {message}", offset + position)


# ---- the whitelist compiler -----------------------------------------------------------


class _Compiled(NamedTuple):
    fn: Evaluator
    text: str
    precedence: int


_ATOM, _UNARY, _PRODUCT, _SUM = 4, 3, 2, 1

_BINARY: dict[type[ast.operator], tuple[str, int]] = {
    ast.Add: ("+", _SUM),
    ast.Sub: ("-", _SUM),
    ast.Mult: ("×", _PRODUCT),
    ast.Div: ("÷", _PRODUCT),
}
_OPERATOR_WORDS: dict[type[ast.operator], tuple[str, str]] = {
    ast.Pow: ("**", "power"),
    ast.FloorDiv: ("//", "floor division"),
    ast.Mod: ("%", "remainder"),
    ast.MatMult: ("@", "matrix product"),
    ast.LShift: ("<<", "bit shift"),
    ast.RShift: (">>", "bit shift"),
    ast.BitOr: ("|", "bitwise or"),
    ast.BitXor: ("^", "bitwise xor"),
    ast.BitAnd: ("&", "bitwise and"),
}
_NODE_WORDS: dict[type[ast.AST], str] = {
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "'and' / 'or' are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.Subscript: "subscript (indexing with [ ]) is not allowed",
    ast.IfExp: "conditional expressions (... if ... else ...) are not allowed",
    ast.Tuple: "values separated by commas are only allowed inside min(...) or max(...)",
    ast.List: "lists [ ] are not allowed",
    ast.Set: "braces { } are not allowed",
    ast.Dict: "braces { } are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "strings are not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.Starred: "star arguments (*) are not allowed",
    ast.Await: "await is not allowed",
}


class _Compiler:
    """Walks a parsed expression, accepting only the whitelist, and builds closures."""

    def __init__(self, source: str, offset: int) -> None:
        self.source = source
        self.offset = offset
        self.names: set[str] = set()
        self.nodes = 0

    def column(self, node: ast.AST) -> int:
        return self.offset + getattr(node, "col_offset", 0) + 1

    def fail(self, node: ast.AST, message: str) -> FormulaError:
        return FormulaError(message, self.column(node))

    def compile(self, node: ast.expr, depth: int) -> _Compiled:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise self.fail(
                node,
                f"formula is too complex (more than {MAX_DEPTH} levels of nesting "
                f"or {MAX_NODES} parts); simplify it",
            )
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Attribute):
            raise self.fail(node, f"attribute access '{ast.unparse(node)}' is not allowed")
        word = _NODE_WORDS.get(type(node), f"{type(node).__name__} is not allowed")
        raise self.fail(node, f"{word} in a formula; {_ALLOWED_HINT}")

    def constant(self, node: ast.Constant) -> _Compiled:
        value = node.value
        if isinstance(value, bool):
            raise self.fail(node, "booleans (True/False) are not allowed; write a number")
        if isinstance(value, str | bytes):
            raise self.fail(node, "strings are not allowed in a formula")
        if not isinstance(value, int | float):
            raise self.fail(node, f"{_literal_words(value)}; write a number")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.fail(node, "number is too large")
        return _Compiled(_constant_fn(number), _number_text(value), _ATOM)

    def name(self, node: ast.Name) -> _Compiled:
        if node.id in FORMULA_NAMES:
            self.names.add(node.id)
            return _Compiled(_name_fn(node.id), node.id, _ATOM)
        if node.id in FUNCTIONS:
            raise self.fail(node, f"'{node.id}' must be called, e.g. {node.id}(2, study_mb)")
        close = difflib.get_close_matches(node.id, sorted(FORMULA_NAMES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise self.fail(node, f"unknown name '{node.id}'{hint}; known names: {_KNOWN_NAMES}")

    def binary(self, node: ast.BinOp, depth: int) -> _Compiled:
        op = type(node.op)
        if op not in _BINARY:
            symbol, words = _OPERATOR_WORDS.get(op, (op.__name__, "operator"))
            raise FormulaError(
                f"`{symbol}` ({words}) is not allowed in a formula; {_ALLOWED_HINT}",
                self.operator_column(node, symbol),
            )
        left = self.compile(node.left, depth + 1)
        right = self.compile(node.right, depth + 1)
        symbol, precedence = _BINARY[op]
        text = f"{_wrap(left, precedence, False)} {symbol} {_wrap(right, precedence, True)}"
        return _Compiled(_binary_fn(op, left.fn, right.fn), text, precedence)

    def operator_column(self, node: ast.BinOp, symbol: str) -> int:
        """Where the operator sits: between the end of the left and the start of the right."""
        start = node.left.end_col_offset or node.col_offset
        found = self.source.find(symbol, start, node.right.col_offset)
        return self.offset + (found if found >= 0 else start) + 1

    def unary(self, node: ast.UnaryOp, depth: int) -> _Compiled:
        if isinstance(node.op, ast.Not):
            raise self.fail(node, "'not' is not allowed in a formula")
        if isinstance(node.op, ast.Invert):
            raise self.fail(node, "`~` (bitwise not) is not allowed in a formula")
        operand = self.compile(node.operand, depth + 1)
        if isinstance(node.op, ast.UAdd):
            return _Compiled(operand.fn, f"+{_wrap(operand, _UNARY, True)}", _UNARY)
        fn = operand.fn
        return _Compiled(lambda v: -fn(v), f"-{_wrap(operand, _UNARY, True)}", _UNARY)

    def call(self, node: ast.Call, depth: int) -> _Compiled:
        func = node.func
        if isinstance(func, ast.Attribute):
            raise self.fail(func, f"attribute access '{ast.unparse(func)}' is not allowed")
        if not isinstance(func, ast.Name):
            self.compile(func, depth + 1)  # names a disallowed callee (e.g. lambda) precisely
            raise self.fail(node, "only min(...) and max(...) may be called")
        if func.id not in FUNCTIONS:
            raise self.fail(node, f"function '{func.id}' is not allowed; only min and max")
        if node.keywords:
            raise self.fail(node.keywords[0], f"{func.id}() takes no keyword arguments")
        if not node.args:
            raise self.fail(node, f"{func.id}() needs at least one value")
        args = [self.compile(arg, depth + 1) for arg in node.args]
        text = f"{func.id}({', '.join(arg.text for arg in args)})"
        return _Compiled(_extreme_fn(func.id, [arg.fn for arg in args]), text, _ATOM)


def _literal_words(value: object) -> str:
    if isinstance(value, complex):
        return "complex numbers (j) are not allowed"
    if value is None:
        return "None is not allowed"
    if value is Ellipsis:
        return "'...' is not allowed"
    return f"'{value!r}' is not allowed"


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _wrap(part: _Compiled, precedence: int, right: bool) -> str:
    """Parentheses only where they change the meaning (or the evaluation order)."""
    needs = part.precedence < precedence or (right and part.precedence == precedence)
    return f"({part.text})" if needs else part.text


# ---- closures: the compiled form ------------------------------------------------------


def _constant_fn(number: float) -> Evaluator:
    return lambda values: number


def _name_fn(name: str) -> Evaluator:
    return lambda values: values.get(name, 0.0)


def _binary_fn(op: type[ast.operator], left: Evaluator, right: Evaluator) -> Evaluator:
    if op is ast.Add:
        return lambda v: left(v) + right(v)
    if op is ast.Sub:
        return lambda v: left(v) - right(v)
    if op is ast.Mult:
        return lambda v: left(v) * right(v)
    return lambda v: left(v) / right(v)


def _extreme_fn(function: str, args: list[Evaluator]) -> Evaluator:
    """min/max that propagate nan (the builtins' answer with nan depends on argument order)."""
    pick = min if function == "min" else max

    def extreme(values: Values) -> float:
        results = [arg(values) for arg in args]
        best = pick(results)
        return best if all(r == r for r in results) else math.nan

    return extreme
