"""The listener's written-out SOP classes and transfer syntaxes are pynetdicom's own lists."""

from __future__ import annotations

import subprocess
import sys

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
    code = ("import sys, runner.cli, runner.commands.run, runner.commands.plan, "
            "runner.commands.census, runner.execute.run; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pynetdicom'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)

    assert result.stdout.strip() == "[]"
