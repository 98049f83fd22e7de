"""`pacsmig demo`: the whole job on loopback, as `make demo` runs it."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.peers  # renders nothing itself, but CI must run it: it is the product's showcase
def test_demo_migrates_everything_and_shows_the_principles(tmp_path: Path) -> None:
    user_reports = ROOT / "reports" / "demo"
    before = _listing(user_reports)
    result = subprocess.run([sys.executable, "-m", "runner", "demo", "--studies", "40",
                             "--reports", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "Run finished: 40 of 40 studies verified" in out
    measured = re.search(r"Simulated PACS: (\d+) recalls \(.*?\) of (\d+) studies .*?, "
                         r"(\d+) of them clinically recent; (\d+) device lock-ups survived", out)
    assert measured is not None, out[-2000:]
    nearline = re.search(r"nearline 0/(\d+)", out)
    assert nearline is not None
    # only the cloud studies were ever recalled (none that was local at the start)
    assert int(measured.group(2)) == int(nearline.group(1))
    assert measured.group(3) == "0"  # re-dating kept every recent study local
    assert int(measured.group(4)) > 0  # the second device locked up, and the run went on
    assert re.search(r"in flight sim1:\d+ sim2:\d+", out)  # both devices at work
    assert "lock-ups" in out[out.index("strategy"):out.index("Against")]  # the forecast
    assert "oldest-first/no-redate" in out and "fewer recent studies" in out
    assert _listing(user_reports) == before  # the user's own demo folder is left alone
    reports = tmp_path / "demo"
    with (reports / "reconciliation.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 and {r["status"] for r in rows} == {"verified"}
    assert (reports / "signoff.html").stat().st_size > 10_000


def _listing(folder: Path) -> list[tuple[str, int]]:
    """Every file under `folder` with its modification time (ns): untouched if equal."""
    if not folder.exists():
        return []
    return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())
