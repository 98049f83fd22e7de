"""The command line's quick exit (runner.cli._exit_now): the exit code and every byte of output
survive skipping the interpreter's teardown, and a thread still running is waited for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_exit_code_and_unflushed_output_survive_the_quick_exit() -> None:
    result = _python(
        "import sys\n"
        "from runner.cli import _exit_now\n"
        "sys.stdout.write('no newline yet')\n"
        "sys.stderr.write('buffered error')\n"
        "_exit_now(SystemExit(3))\n")

    assert (result.returncode, result.stdout, result.stderr) == (3, "no newline yet",
                                                                 "buffered error")


def test_a_message_as_exit_code_is_printed_and_exits_with_1() -> None:
    result = _python("from runner.cli import _exit_now\n_exit_now(SystemExit('bad input'))\n")

    assert (result.returncode, result.stderr) == (1, "bad input\n")


def test_no_code_means_success() -> None:
    assert _python("from runner.cli import _exit_now\n_exit_now(SystemExit())\n").returncode == 0


def test_a_thread_still_running_is_waited_for(tmp_path: Path) -> None:
    flag = tmp_path / "finished"
    result = _python(
        "import threading, time\n"
        "from pathlib import Path\n"
        "from runner.cli import _exit_now\n"
        f"worker = threading.Thread(target=lambda: (time.sleep(0.3), "
        f"Path({str(flag)!r}).write_text('yes')))\n"
        "worker.start()\n"
        "_exit_now(SystemExit(4))\n")

    assert result.returncode == 4
    assert flag.read_text() == "yes"


def test_the_console_entry_point_exits_with_the_commands_code(tmp_path: Path) -> None:
    broken = tmp_path / "site.yaml"
    broken.write_text("site: [unclosed\n")

    result = subprocess.run([sys.executable, "-m", "runner", "validate", str(broken)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2
    assert "site.yaml" in result.stderr + result.stdout
