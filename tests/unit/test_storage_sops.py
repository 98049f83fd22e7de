"""The listener's written-out SOP classes and transfer syntaxes are pynetdicom's own lists;
the runner itself (all of runner/ but the simulated peers, runner/sim/) imports no pynetdicom."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from pynetdicom import AllStoragePresentationContexts, StoragePresentationContexts
from pynetdicom._globals import ALL_TRANSFER_SYNTAXES

from runner.dicom.storage_sops import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES


def test_the_storage_sop_classes_are_pynetdicoms() -> None:
    theirs = {str(cx.abstract_syntax) for cx in AllStoragePresentationContexts} | {
        str(cx.abstract_syntax) for cx in StoragePresentationContexts}

    assert tuple(sorted(theirs)) == STORAGE_SOP_CLASSES


def test_the_transfer_syntaxes_are_pynetdicoms_in_its_order() -> None:
    assert tuple(str(syntax) for syntax in ALL_TRANSFER_SYNTAXES) == TRANSFER_SYNTAXES


def test_a_run_imports_no_pynetdicom() -> None:
    code = ("import sys, runner.cli, runner.execute.run, runner.plan.commands; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pynetdicom'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)

    assert result.stdout.strip() == "[]"


RUNNER = Path(__file__).resolve().parents[2] / "runner"


def _runner_modules() -> list[Path]:
    """Every module of the runner but the simulated peers'."""
    return sorted(path for path in RUNNER.rglob("*.py")
                  if (RUNNER / "sim") not in path.parents)


def _imports_pynetdicom(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [name for name in names if name.split(".")[0] == "pynetdicom"]
    return found


def test_no_module_of_the_runner_outside_the_simulated_peers_imports_pynetdicom() -> None:
    offenders = {str(path.relative_to(RUNNER)): names for path in _runner_modules()
                 if (names := _imports_pynetdicom(path))}

    assert len(_runner_modules()) > 50
    assert offenders == {}


def test_importing_all_of_the_runner_but_the_simulated_peers_loads_no_pynetdicom() -> None:
    """Not even through another module (runner.sim is imported only where the demo runs)."""
    names = [".".join(path.relative_to(RUNNER.parent).with_suffix("").parts).removesuffix(
        ".__init__") for path in _runner_modules() if path.name != "__main__.py"]
    code = (f"import importlib, sys\nfor name in {names!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pynetdicom'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)

    assert result.stdout.strip() == "[]"
