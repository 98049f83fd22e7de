"""Importing the runner starts no thread: numpy's OpenBLAS pool (a thread per core, spinning
after import) is held to the calling thread unless the user asked for one."""

from __future__ import annotations

import os
import subprocess
import sys

_IMPORT_THE_RUN = """
import os, sys
import runner.commands.run
assert "numpy" in sys.modules, "the run no longer imports numpy: this test proves nothing"
print(len(os.listdir("/proc/self/task")), os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
"""


def _imported(env_extra: dict[str, str]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _IMPORT_THE_RUN], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return int(out[0]), out[1]


def test_importing_the_run_leaves_the_process_with_one_thread() -> None:
    threads, setting = _imported({})
    assert (threads, setting) == (1, "1")


def test_a_users_own_openblas_setting_is_kept() -> None:
    assert _imported({"OPENBLAS_NUM_THREADS": "2"})[1] == "2"
