"""Where a command's CPU goes, thread by thread: runs it with every Python thread named in the
operating system after its `threading` name (a sitecustomize in a temporary folder calls
prctl(PR_SET_NAME) as each thread starts), polls /proc for the CPU of each thread of the
process and of its children (the forwarding workers) until it ends, and prints the sums.

    .venv/bin/python benchmarks/thread_cpu.py -- .venv/bin/python -m runner run site.yaml

Threads of one kind are summed (retrieve-*, association-*, forward-N); the figures miss at
most the last poll interval (50 ms) of each thread.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

_NAMING = '''import ctypes, threading
_prctl = ctypes.CDLL(None).prctl
_start = threading.Thread._bootstrap_inner
def _named(self):
    _prctl(15, self.name.encode()[:15], 0, 0, 0)
    return _start(self)
threading.Thread._bootstrap_inner = _named
'''
_TICK = os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Parse the arguments, run the command, print the CPU per kind of thread."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "sitecustomize.py").write_text(_NAMING)
        env = dict(os.environ, PYTHONPATH=folder)
        proc = subprocess.Popen(args.command, env=env)
        seen: dict[tuple[int, int], tuple[str, float, float]] = {}
        while proc.poll() is None:
            _poll(proc.pid, seen)
            time.sleep(0.05)
    totals: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for name, user, system in seen.values():
        totals[name][0] += user
        totals[name][1] += system
    for name, (user, system) in sorted(totals.items(), key=lambda kv: -sum(kv[1])):
        print(f"{name:28s} user {user:6.2f}  system {system:6.2f}")
    print(f"{'all':28s} {sum(u + s for u, s in totals.values()):6.2f} CPU s")


def _poll(pid: int, seen: dict[tuple[int, int], tuple[str, float, float]]) -> None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return
    for process in [pid, *map(int, children)]:
        for task in Path(f"/proc/{process}/task").glob("*"):
            try:
                raw = (task / "stat").read_text()
            except OSError:
                continue
            name = _kind(raw[raw.index("(") + 1:raw.rindex(")")], process != pid)
            fields = raw.rsplit(")", 1)[1].split()
            seen[(process, int(task.name))] = (name, int(fields[11]) / _TICK,
                                               int(fields[12]) / _TICK)


def _kind(name: str, child: bool) -> str:
    if child:
        return "worker processes"
    for prefix in ("retrieve-", "association-", "forward-"):
        if name.startswith(prefix) and name != "forward-results":
            return prefix + "*"
    return "main thread" if name.startswith("python") else name


if __name__ == "__main__":
    main()
