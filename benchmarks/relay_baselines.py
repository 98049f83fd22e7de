"""Baselines for `relay_vs_direct.py` beside the runner, in the same run: a relay written in C
(DCMTK: the source C-MOVEs to `storescp`, which writes each instance to a folder; `storescu`
then sends the folder on) for the CPU a relay needs per gigabyte, and the cold regime (the
source's files evicted from the page cache before each move, so it reads them from disk).
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

RELAY_AE = "DCMRELAY"


class Orthanc(Protocol):
    """What the baselines need of an Orthanc (tests.peers.OrthancProcess)."""

    aet: str
    dicom_port: int
    workdir: Path

    def rest_get(self, path: str) -> object:
        """A REST call's decoded answer."""
        ...


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def evict(folder: Path) -> int:
    """Drop the files under `folder` from the page cache (they stay on disk); how many."""
    count = 0
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            count += 1
    return count


def dcmtk_relay(source: Orthanc, dest: Orthanc, study_uids: list[str], folder: Path,
                port: int, env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Relay every study through DCMTK: movescu (four at a time) from the source into
    `storescp` on `port`, then `storescu` from its folder to `dest`. Wall seconds, and the
    CPU seconds of the source, the destination and the relay (storescp + storescu)."""
    folder.mkdir(parents=True)
    storescp = subprocess.Popen(["storescp", "-aet", RELAY_AE, "-od", str(folder), "+xa",
                                 str(port)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # listening
        before = (process_cpu(_pid(source)), process_cpu(_pid(dest)), children_cpu())
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda uid: _move(source, uid, env), study_uids))
        receiving = process_cpu(storescp.pid)
        subprocess.run(["storescu", "-aec", dest.aet, "+sd", "+r", "-xs", "127.0.0.1",
                        str(dest.dicom_port), str(folder)], check=True, env=env,
                       capture_output=True)
        seconds = time.monotonic() - started
        cpu = {"source": process_cpu(_pid(source)) - before[0],
               "destination": process_cpu(_pid(dest)) - before[1],
               "mover": receiving + children_cpu() - before[2]}
    finally:
        storescp.kill()
        storescp.wait()
    return seconds, {k: round(v, 2) for k, v in cpu.items()}


def _move(source: Orthanc, study_uid: str, env: dict[str, str]) -> None:
    subprocess.run(["movescu", "-S", "-aet", "MOVESCU", "-aec", source.aet, "-aem", RELAY_AE,
                    "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                    "127.0.0.1", str(source.dicom_port)], check=True, env=env,
                   capture_output=True)


def _pid(orthanc: Orthanc) -> int:
    proc = getattr(orthanc, "_proc", None)
    assert proc is not None, "the Orthanc is not running"
    return int(proc.pid)
