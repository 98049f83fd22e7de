"""Property tests of profile validation: garbage in gives located Problems, never a crash.

`validate_profile` must turn any file (random text, YAML token soup, or the contract's own
profile with one value replaced by something wrong) into a list of `Problem`s whose line
and column lie inside the file, and must raise nothing.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import Problem
from runner.morph.loaded import validate_profile

SPEC_DIR = Path(__file__).parents[1] / "data" / "spec"
SPEC = SPEC_DIR / "site-profile.v1.yaml"
SPEC_DATA: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

_YAML_TOKENS = [
    ":", ": ", "- ", "-", "? ", "{", "}", "[", "]", ",", "'", '"', "#", "&a ", "*a", "!!str ",
    "!!python/object/apply:os.system ", "!!binary ", "!!set ", "!!timestamp ", "!!bool ",
    "!!int x", "!!float x", "%YAML 1.2\n", "---\n", "...\n", "|\n", ">-\n", "<<: *a\n", "\t",
    "  ", "\n", "\r\n", "\x00", "\x1f", "\x85", "\u2028", "\ufffe", "\ufeff",
    "~", "null", "true", "no", "0x1F", "1e999", ".nan", "-.inf", "2024-02-30", "12:30:00",
    "version", "site", "listener", "source", "devices", "throttles", "schedule", "port",
    "ae_title", "delay_seconds", "study_mb / 0", "morphing", "tiering", "redate", "reports",
    "dir", "id", "\\", "é", "\U0001f600", "1", "99999999999999999999", "-1",
]
_GARBAGE: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
    | st.dates(min_value=date(1, 1, 1)) | st.sampled_from(["today", "../../etc/passwd", "",
                                                           "min(", "00:00-24:00", "0" * 80]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder holding the contract's lookup tables, so relative paths resolve as in spec/."""
    folder = tmp_path_factory.mktemp("fuzz-profile")
    for item in SPEC_DIR.iterdir():
        if item.is_dir():
            shutil.copytree(item, folder / item.name)
    yield folder


def _check(path: Path, problems: list[Problem]) -> None:
    """Every problem is a located Problem inside the file."""
    assert isinstance(problems, list)
    text = path.read_bytes().decode("utf-8", errors="replace")
    breaks = sum(text.count(b) for b in ("\n", "\r", "\x85", "\u2028", "\u2029"))
    widest = len(text)  # YAML and the runner may disagree on what breaks a line
    for problem in problems:
        assert isinstance(problem, Problem), problem
        assert problem.path == str(path)
        assert problem.message.strip(), problem
        assert 1 <= problem.line <= breaks + 2, (problem, breaks)
        assert 1 <= problem.column <= widest + 2, (problem, widest)


def _validated(workdir: Path, text: str | bytes) -> list[Problem]:
    path = workdir / "site.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    problems = validate_profile(path)
    _check(path, problems)
    return problems


def test_contract_profile_is_valid_in_the_fuzz_folder(workdir: Path) -> None:
    assert _validated(workdir, SPEC.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("char", ["\x00", "\x1f", "\x7f", "\ufffe"])
def test_control_character_is_a_located_problem(workdir: Path, char: str) -> None:
    problems = _validated(workdir, f"version: 1\nsite:\n  id: a{char}b\n")
    assert problems and problems[0].line == 3


@pytest.mark.parametrize("text", ["version: !!timestamp x\n", "!!timestamp : 1\n",
                                  "version: !!bool x\n"])
def test_explicit_scalar_tag_on_a_wrong_value_is_a_located_problem(workdir: Path,
                                                                     text: str) -> None:
    assert _validated(workdir, text)


@pytest.mark.parametrize("text", ["version: !!int\n", "version: !!float ''\n", "!!int : 1\n"])
def test_explicit_number_tag_on_an_empty_value_is_a_located_problem(workdir: Path,
                                                                    text: str) -> None:
    assert _validated(workdir, text)


@given(text=st.text(max_size=400))
@FUZZ
def test_random_text_gives_located_problems_and_never_raises(workdir: Path, text: str) -> None:
    _validated(workdir, text)


@given(data=st.binary(max_size=300))
@FUZZ
def test_random_bytes_give_located_problems_and_never_raise(workdir: Path, data: bytes) -> None:
    _validated(workdir, data)


@given(tokens=st.lists(st.sampled_from(_YAML_TOKENS), max_size=60))
@FUZZ
def test_yaml_token_soup_gives_located_problems_and_never_raises(workdir: Path,
                                                                 tokens: list[str]) -> None:
    _validated(workdir, "".join(tokens))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside the contract's profile (mappings and lists)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


SPEC_PATHS = _paths(SPEC_DATA)


def _mutated(path: tuple[Any, ...], how: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(SPEC_DATA)
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "unknown" and isinstance(parent, dict):
        parent[f"{last}_typo"] = value
    else:
        parent[last] = value
    return data


@given(path=st.sampled_from(SPEC_PATHS), how=st.sampled_from(["replace", "delete", "unknown"]),
       value=_GARBAGE)
@FUZZ
def test_contract_profile_with_one_wrong_value_is_reported_not_raised(
        workdir: Path, path: tuple[Any, ...], how: str, value: Any) -> None:
    data = _mutated(path, how, value)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    problems = _validated(workdir, text)
    if how == "unknown" and isinstance(path[-1], str) and path[-1] != "lookups":
        assert problems, f"unknown key {path[-1]}_typo was accepted"


@given(edits=st.lists(st.tuples(st.sampled_from(SPEC_PATHS), _GARBAGE), min_size=2, max_size=5))
@FUZZ
def test_several_wrong_values_at_once_never_raise(
        workdir: Path, edits: list[tuple[tuple[Any, ...], Any]]) -> None:
    data = copy.deepcopy(SPEC_DATA)
    for path, value in edits:
        parent: Any = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced a parent: this path no longer exists
    _validated(workdir, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
