"""Safe YAML loading that remembers where every key and value stands in the file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import Problem

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a source file."""

    line: int
    column: int


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a YAML document stands."""

    path: str
    values: dict[Loc, Position] = field(default_factory=dict)
    keys: dict[Loc, Position] = field(default_factory=dict)
    quoted: set[Loc] = field(default_factory=set)
    refused: set[Loc] = field(default_factory=set)  # values already reported as unreadable

    def value_at(self, loc: Sequence[str | int]) -> Position:
        """The position of the value at `loc`, or of its nearest existing parent."""
        return self._nearest(tuple(loc), self.values)

    def key_at(self, loc: Sequence[str | int]) -> Position:
        """The position of the key that names `loc` (falls back to the value's position)."""
        loc = tuple(loc)
        if loc in self.keys:
            return self.keys[loc]
        return self.value_at(loc)

    def problem(self, loc: Sequence[str | int], message: str, *, at_key: bool = False) -> Problem:
        """A problem located at the value (or key) that `loc` names."""
        pos = self.key_at(loc) if at_key else self.value_at(loc)
        return Problem(self.path, pos.line, pos.column, message)

    @staticmethod
    def _nearest(loc: Loc, table: dict[Loc, Position]) -> Position:
        for end in range(len(loc), -1, -1):
            if loc[:end] in table:
                return table[loc[:end]]
        return Position(1, 1)


MAX_NODES = 200_000
_KINDS = {"timestamp": "date", "bool": "true/false value", "int": "whole number",
          "float": "number"}
_PLAIN_TAGS: dict[type, tuple[str, ...]] = {
    yaml.MappingNode: ("tag:yaml.org,2002:map",),
    yaml.SequenceNode: ("tag:yaml.org,2002:seq",),
}


class _Loader(yaml.SafeLoader):
    """The safe loader: only plain YAML types; `!!python/...` tags are errors."""


def _pos(mark: yaml.Mark | None) -> Position:
    if mark is None:
        return Position(1, 1)
    return Position(mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed YAML node tree into plain Python data plus a SourceMap."""

    def __init__(self, loader: _Loader, source: SourceMap) -> None:
        self.loader = loader
        self.source = source
        self.problems: list[Problem] = []
        self.nodes = 0
        self.current: Loc = ()

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.current = loc
        self.source.values[loc] = _pos(node.start_mark)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if self.nodes == MAX_NODES + 1:
                self._fail(node, f"the document is too large (over {MAX_NODES:,} values; "
                                 "are aliases (*name) repeating a large part?)")
            return None
        if node.tag not in _PLAIN_TAGS.get(type(node), (node.tag,)):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self._fail(node, f"the YAML tag {tag} is not allowed: a site profile holds "
                             "plain values only")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            items = [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            self.current = loc
            return items
        if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
            self.source.quoted.add(loc)
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        if node.tag == "tag:yaml.org,2002:merge" or any(
            k.tag == "tag:yaml.org,2002:merge" for k, _ in node.value
        ):
            self._fail(node, "YAML merge keys (<<) are not supported in a site profile")
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int) or isinstance(key, bool):
                self._fail(key_node, "a mapping key must be a plain name")
                continue
            key = str(key)
            if key in out:
                self._fail(key_node, f"duplicate key '{key}' (the first one would be ignored)")
                continue
            self.source.keys[(*loc, key)] = _pos(key_node.start_mark)
            out[key] = self.build(value_node, (*loc, key))
            self.current = loc
        return out

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._fail(node, _constructor_message(exc))
        except (ValueError, KeyError, AttributeError, TypeError, IndexError) as exc:
            # PyYAML's explicit tags on wrong values: `!!timestamp x`, `!!bool x`, a bad date
            kind = node.tag.replace("tag:yaml.org,2002:", "")
            what = _KINDS.get(kind, kind)
            detail = f": {exc}" if isinstance(exc, ValueError) else ""
            self._fail(node, f"'{node.value}' is not a valid {what}{detail}")
        return None

    def _fail(self, node: yaml.Node, message: str) -> None:
        self.source.refused.add(self.current)
        pos = _pos(node.start_mark)
        self.problems.append(Problem(self.source.path, pos.line, pos.column, message))


def _constructor_message(exc: yaml.constructor.ConstructorError) -> str:
    problem = exc.problem or "cannot be read"
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip().strip("'")
        return f"the YAML tag {tag} is not allowed: a site profile holds plain values only"
    return f"YAML value cannot be read: {problem}"


def load_yaml(text: str, path: str) -> tuple[Any, SourceMap, list[Problem]]:
    """Parse `text` safely; returns the data, its source map and any problems found."""
    source = SourceMap(path)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        return None, source, [_reader_problem(text, path, exc)]
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        pos = _pos(exc.problem_mark or exc.context_mark)
        what = exc.problem or exc.context or "invalid YAML"
        return None, source, [Problem(path, pos.line, pos.column, f"YAML syntax error: {what}")]
    except yaml.reader.ReaderError as exc:
        return None, source, [_reader_problem(text, path, exc)]
    except yaml.YAMLError as exc:
        return None, source, [Problem(path, 1, 1, f"YAML error: {exc}")]
    except RecursionError:
        return None, source, [Problem(path, 1, 1, "the document is nested too deeply")]
    finally:
        if "loader" in locals():
            loader.dispose()
    if node is None:
        return None, source, []
    builder = _Builder(loader, source)
    try:
        data = builder.build(node, ())
    except RecursionError:
        return None, source, [Problem(path, 1, 1, "the document is nested too deeply")]
    return data, source, builder.problems


def _reader_problem(text: str, path: str, exc: yaml.reader.ReaderError) -> Problem:
    """A character YAML does not allow, located by its position in the text."""
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "?")
    return Problem(path, line, column, f"character U+{char:04X} is not allowed in YAML text")


def read_text(path: Path) -> tuple[str | None, list[Problem]]:
    """Read a profile file as UTF-8 text, or say why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8"), []
    except FileNotFoundError:
        return None, [Problem(str(path), 1, 1, "file not found")]
    except UnicodeDecodeError as exc:
        return None, [Problem(str(path), 1, 1, f"not UTF-8 text (byte {exc.start})")]
    except OSError as exc:
        return None, [Problem(str(path), 1, 1, f"cannot be read: {exc.strerror}")]
