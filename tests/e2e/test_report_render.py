"""The sign-off report as a person sees it: rendered by headless Chromium on screen and to
A4 PDF; screenshots and PDF pages are kept as artefacts under the test's tmp dir.

Chromium is Debian's `chromium` package: missing, the tests are skipped locally and fail
under CI=true (a skipped render test would hide a broken setup).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from runner.commands.report import report_command
from runner.dicom.peer import Peer
from runner.ledger import LEDGER_FILENAME, EventRecorded, StudyStatus
from runner.morph.loaded import load_profile
from runner.profile.tiers import Location
from tests.profiles import profile_data, write_profile
from tests.unit.test_report_sql import Builder, building

START = datetime(2024, 1, 8, 8, 0, tzinfo=UTC)
WEEKS = 30
EXTERNAL = re.compile(r"https?://|\bsrc=|\bhref=|url\(|@import", re.IGNORECASE)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")
OVERFLOW_PROBE = """<script>
window.addEventListener('load', () => {
  const wide = [...document.querySelectorAll('table, svg, p, h1, h2, h3')].filter(
    e => e.getBoundingClientRect().right > document.body.getBoundingClientRect().right + 1);
  document.body.setAttribute('data-overflow', String(wide.length) + ' ' +
    wide.map(e => e.tagName + ':' + e.textContent.slice(0, 40)).join(' | '));
});
</script>"""


@pytest.fixture
def chromium() -> str:
    """Chromium's path; skip when it is missing, fail instead under CI=true."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def run_chromium(chromium: str, profile_dir: Path, *args: str) -> None:
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *args],
                   check=True, capture_output=True, timeout=180)


@pytest.fixture
def signoff(tmp_path: Path) -> Path:
    """A sign-off report of a half-year migration with failures, dead time and exceptions."""
    data = profile_data(tmp_path, [("wfm1", Peer("WFM1", "127.0.0.1", 11112)),
                                   ("wfm2", Peer("WFM2", "127.0.0.1", 11113))],
                        Peer("VNA", "127.0.0.1", 11114), 11115,
                        site={"name": "St Elsewhere NHS Foundation Trust <Radiology>"})
    loaded = load_profile(write_profile(tmp_path, data))
    with building(loaded.profile.reports.dir / LEDGER_FILENAME) as site:
        busy_half_year(site)
    result = report_command(loaded, date_from=None, date_to=None, phase=None,
                            write=lambda line: None)
    assert result.discrepancies
    return result.files[-1]


def busy_half_year(site: Builder) -> None:
    """Weekly batches from two tiers and devices, TB per week; some studies go wrong."""
    for week in range(WEEKS):
        for n in range(4):
            uid = f"1.2.826.0.1.3680043.8.498.{week:04d}{n}{10**20}"
            tier = Location.LOCAL if week < 18 or n == 0 else Location.NEARLINE
            site.plan(uid, tier=tier, modality=("CT", "MR", "CR", "US")[n], phase=week // 10,
                      study_date=date(2008 + week % 15, 1 + n, 1), instances=3,
                      mb=390_000.0, device=("wfm1", "wfm2")[n % 2])
            at = START + timedelta(weeks=week, hours=n * 5)
            if week % 9 == 4 and n == 3:
                broken(site, uid, at)
            else:
                site.migrate(uid, count=3, at=at, nbytes=130 * 10**9,
                             device=("wfm1", "wfm2")[n % 2])
    site.ledger.record(EventRecorded(kind="dead_time_start", device="wfm1", at=START))
    site.ledger.record(EventRecorded(kind="dead_time_end", device="wfm1",
                                     at=START + timedelta(hours=7)))
    for n in range(40):
        site.plan(f"1.2.826.0.1.3680043.8.498.9{n:03d}{10**20}", tier=Location.NEARLINE,
                  phase=3, study_date=None, instances=12_345, mb=2_500_000.0)


def broken(site: Builder, uid: str, at: datetime) -> None:
    site.retrieve(uid, at=at, category="timeout", device="wfm2",
                  detail="no C-MOVE response within 120 s (DIMSE timeout)")
    site.retrieve(uid, at=at + timedelta(minutes=5), category="unable_to_process",
                  device="wfm2", detail="status 0xC001: the study is being recalled")
    site.ledger.flush()
    site.ledger.record_study_status(uid, StudyStatus.FAILED,
                                    "retrieve from wfm2: gave up after 2 attempts")


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_screen_rendering_fits_the_page_and_is_saved(chromium: str, signoff: Path,
                                                     tmp_path: Path) -> None:
    shot = tmp_path / "signoff-screen.png"
    run_chromium(chromium, tmp_path / "chromium-screen", f"--screenshot={shot}",
                 "--window-size=1240,1754", signoff.as_uri())
    assert png_size(shot) == (1240, 1754)
    assert shot.stat().st_size > 50_000


def test_nothing_overflows_the_page_width(chromium: str, signoff: Path,
                                          tmp_path: Path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(signoff.read_text().replace("</body>", OVERFLOW_PROBE + "</body>"))
    for width in (794, 1240):
        dom = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / f'probe-{width}'}",
             f"--window-size={width},1123", "--dump-dom", probe.as_uri()],
            check=True, capture_output=True, text=True, timeout=180).stdout
        match = re.search(r'data-overflow="([^"]*)"', dom)
        assert match and match.group(1).startswith("0 "), match and match.group(1)


def test_a4_pdf_has_a_page_per_major_section_and_readable_numbers(
        chromium: str, signoff: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "signoff.pdf"
    run_chromium(chromium, tmp_path / "chromium-pdf", f"--print-to-pdf={pdf}",
                 "--no-pdf-header-footer", signoff.as_uri())
    assert pdf.read_bytes().startswith(b"%PDF")
    pages = pdf_pages_as_png(pdf, tmp_path)
    text = pdf_text(pdf)
    if text is not None:
        assert re.search(r"Page 1 of (\d+)", text)
        assert "Exceptions: 43 studies not verified" in text
        assert "494,160" in text
    assert pages is None or len(pages) >= 5


def pdf_pages_as_png(pdf: Path, folder: Path) -> list[Path] | None:
    """The PDF's first pages as PNG artefacts (None without poppler's pdftoppm)."""
    if shutil.which("pdftoppm") is None:
        return None
    subprocess.run(["pdftoppm", "-r", "70", "-png", "-l", "8", str(pdf),
                    str(folder / "signoff-page")], check=True, timeout=120)
    return sorted(folder.glob("signoff-page-*.png"))


def pdf_text(pdf: Path) -> str | None:
    if shutil.which("pdftotext") is None:
        return None
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True, timeout=120).stdout


def test_the_rendered_file_refers_to_nothing_outside_itself(signoff: Path) -> None:
    html = signoff.read_text()
    assert not EXTERNAL.search(html)
    assert "<script" not in html
    assert "St Elsewhere NHS Foundation Trust &lt;Radiology&gt;" in html
