"""The import graph of runner/, read with `ast`: no two packages import each other (directly
or round a longer circle), and the pure core reaches no socket layer.

Every import counts: at module level, inside functions (lazy) and under TYPE_CHECKING; a
module also depends on the `__init__` of each package above it, which Python runs first.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "runner"

# The pure core: touches no network, imports no socket layer (not even lazily).
PURE = ("runner.profile", "runner.plan", "runner.tiering", "runner.morph")
# What the pure core may not reach, directly or through any module it imports.
SOCKET_LAYERS = ("runner.dicom", "runner.execute", "runner.ledger", "runner.sim",
                 "runner.inventory.cfind", "runner.commands", "runner.cli",
                 "pynetdicom", "socket", "ssl")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> Iterator[str]:
    """The modules `path` imports, absolute (`from runner.x import y` yields runner.x and
    runner.x.y: y may be a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def module_graph() -> dict[str, set[str]]:
    """Each runner module -> the modules it imports (runner ones that exist, plus every
    third-party top-level name), with the packages above each runner module."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        found: set[str] = set()
        for name in _imports(path, module):
            if name.split(".")[0] != "runner":
                found.add(name.split(".")[0])
            elif name in files:
                found.add(name)
        found |= {p for name in set(found) for p in _parents(name) if p in files}
        found |= {p for p in _parents(module) if p in files}
        found.discard(module)
        graph[module] = found
    return graph


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def _package(module: str) -> str:
    """runner.plan.compile -> plan; runner.cli -> cli."""
    return module.split(".")[1] if module.count(".") else module


def package_graph(graph: dict[str, set[str]]) -> dict[str, dict[str, set[str]]]:
    """Package -> package it imports -> the modules of the first that do."""
    packages: dict[str, dict[str, set[str]]] = {}
    for module, targets in graph.items():
        if module == "runner":
            continue
        edges = packages.setdefault(_package(module), {})
        for target in targets:
            if target.startswith("runner.") and _package(target) != _package(module):
                edges.setdefault(_package(target), set()).add(module)
    return packages


def strongly_connected(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Tarjan: the components with more than one package (each a circle of imports)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _reach(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module `start` imports, directly or not -> the module that imports it."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        module = todo.pop()
        for target in graph.get(module, ()):
            if target not in seen:
                seen[target] = module
                todo.append(target)
    return seen


def _chain(seen: dict[str, str], start: str, end: str) -> str:
    chain = [end]
    while chain[-1] != start:
        chain.append(seen[chain[-1]])
    return " -> ".join(reversed(chain))


def _is_in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def pure_core_violations(graph: dict[str, set[str]]) -> list[str]:
    """Each pure-core module that reaches a socket layer, with the chain of imports."""
    bad = []
    for module in sorted(graph):
        if not _is_in(module, PURE):
            continue
        seen = _reach(graph, module)
        for target in sorted(seen):
            if _is_in(target, SOCKET_LAYERS):
                bad.append(_chain(seen, module, target))
                break
    return bad


def cycle_report(packages: dict[str, dict[str, set[str]]],
                 component: tuple[str, ...]) -> str:
    lines = [" <-> ".join(component)]
    for source in component:
        for target in component:
            modules = packages.get(source, {}).get(target)
            if modules:
                lines.append(f"  {source} -> {target}: {', '.join(sorted(modules))}")
    return "\n".join(lines)


def test_no_two_packages_import_each_other() -> None:
    packages = package_graph(module_graph())
    edges = {p: set(targets) for p, targets in packages.items()}
    cycles = [c for c in strongly_connected(edges)]

    assert not cycles, "\n".join(cycle_report(packages, c) for c in cycles)


def test_the_pure_core_reaches_no_socket_layer() -> None:
    violations = pure_core_violations(module_graph())

    assert not violations, "\n".join(violations)


def test_the_dicom_layer_takes_plain_defaults_not_the_profile_models() -> None:
    """runner.dicom may read runner.profile.defaults, never the pydantic models."""
    graph = module_graph()
    bad = []
    for module in sorted(m for m in graph if _is_in(m, ("runner.dicom",))):
        seen = _reach(graph, module)
        bad += [_chain(seen, module, t) for t in sorted(seen)
                if _is_in(t, ("pydantic", "runner.profile.models", "runner.profile.load"))]

    assert not bad, "\n".join(bad)


def test_only_the_command_line_calls_the_commands() -> None:
    packages = package_graph(module_graph())
    callers = {p for p, targets in packages.items() if "commands" in targets}
    cli_callers = {p for p, targets in packages.items() if "cli" in targets}

    assert callers <= {"cli"}, callers
    assert cli_callers <= {"__main__"}, cli_callers


@pytest.mark.parametrize(("edges", "expected"), [
    ({"a": {"b"}, "b": {"a"}}, [("a", "b")]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [("a", "b", "c")]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_a_circle_of_any_length_is_found(edges: dict[str, set[str]],
                                         expected: list[tuple[str, ...]]) -> None:
    assert strongly_connected(edges) == expected


def test_lazy_and_relative_imports_count(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from runner.dicom import peer\n    from . import sibling\n"
                    "    from ..errors import InputError\n")

    found = set(_imports(path, "runner.plan.mod"))

    assert {"runner.dicom", "runner.dicom.peer", "runner.plan.sibling",
            "runner.errors", "runner.errors.InputError"} <= found
