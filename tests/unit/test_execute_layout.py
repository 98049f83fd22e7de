"""The run's stages (runner/execute) keep their shape: no import cycle between its modules,
the flow's later stages never import its earlier ones, and no module over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

EXECUTE = Path(__file__).resolve().parents[2] / "runner" / "execute"
MOST_LINES = 400

# A stage may import those after it in the flow, never those before it.
FLOW = ["runner.execute.scheduler", "runner.execute.retrieving", "runner.execute.intake",
        "runner.execute.sending", "runner.execute.settlement"]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in EXECUTE.rglob("*.py"):
        parts = path.relative_to(EXECUTE.parents[1]).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), list(graph[start])
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return False


def test_no_module_of_the_run_imports_itself_back() -> None:
    graph = _graph()
    cycles = sorted(name for name in graph if _reaches(graph, name, name))
    assert not cycles


def test_the_flow_runs_one_way() -> None:
    graph = _graph()
    for later_index, later in enumerate(FLOW):
        for earlier in FLOW[:later_index]:
            for name in graph:
                if name == later or name.startswith(later + "."):
                    assert not any(d == earlier or d.startswith(earlier + ".")
                                   for d in graph[name]), f"{name} imports {earlier}"


def test_no_module_of_the_run_is_over_400_lines() -> None:
    long = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert not {name: lines for name, lines in long.items() if lines > MOST_LINES}
