"""Deep verification by sampling: `pacsmig verify` reads instances back and compares them.

After a migration (Orthanc -> runner -> Orthanc, one rule), two instances are altered at the
destination under their own UIDs: one pixel, and one attribute no rule touches. The sample
(every instance here) must find exactly those two, with what differs.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import date
from io import BytesIO
from pathlib import Path

import duckdb
import pytest
from pydicom import dcmread

from runner.sim.generate import StudySpec, make_study, to_bytes
from tests.integration.test_migration import make_site
from tests.peers import OrthancProcess

pytestmark = pytest.mark.peers

RULE = [{"set": {"InstitutionName": "Example Hospital"}}]


def _replace(destination: OrthancProcess, sop_uid: str, change: Callable[[bytes], bytes]) -> None:
    """Put a changed copy of an instance at the destination, under the same UIDs."""
    [found] = destination.rest_post("/tools/lookup", sop_uid.encode())
    url = destination._url(f"/instances/{found['ID']}/file")
    with urllib.request.urlopen(url, timeout=30) as response:
        original = response.read()
    request = urllib.request.Request(destination._url(f"/instances/{found['ID']}"),
                                     method="DELETE")
    urllib.request.urlopen(request, timeout=30).close()
    destination.upload(change(original))


def _pixel_changed(raw: bytes) -> bytes:
    ds = dcmread(BytesIO(raw))
    pixels = bytearray(ds.PixelData)
    pixels[100] ^= 0xFF
    ds.PixelData = bytes(pixels)
    return to_bytes(ds)


def _attribute_changed(raw: bytes) -> bytes:
    ds = dcmread(BytesIO(raw))
    ds.StudyDescription = "CHANGED AT THE DESTINATION"
    return to_bytes(ds)


def _checks(reports: Path) -> dict[str, dict[str, object]]:
    with duckdb.connect(str(reports / "ledger.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT detail FROM events WHERE kind = 'sample_check' "
                            "ORDER BY occurred_at").fetchall()
    return {d["sop_instance_uid"]: d for d in (json.loads(r[0]) for r in rows)}


def test_a_sample_read_back_catches_a_changed_pixel_and_a_changed_attribute(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs = [StudySpec(f"sample-{n}", f"PID-{n}", "Doe^Jane", date(2018, 4, 5), "CT",
                       instances_per_series=3) for n in range(2)]
    site = make_site(tmp_path, orthanc_factory, specs, morphing=RULE,
                     destination={"verify_sample": 100})
    assert site.pacsmig("run").returncode == 0

    clean = site.pacsmig("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Sample of 6 instances read back from the destination: 6 as sent" in clean.stdout
    assert all(check["ok"] for check in _checks(site.reports).values())

    first, second = (str(ds.SOPInstanceUID) for ds in make_study(specs[0])[:2])
    _replace(site.destination, first, _pixel_changed)
    _replace(site.destination, second, _attribute_changed)

    caught = site.pacsmig("verify")
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "4 as sent, 2 different" in caught.stdout
    checks = _checks(site.reports)  # the latest check of each instance wins in this dict
    assert checks[first]["differences"] == ["Pixel Data bytes differ"]
    assert checks[second]["differences"] == [
        "(0008,1030) has another value at the destination"]

    report = site.pacsmig("report")
    assert report.returncode in (0, 1), report.stderr
    html = (site.reports / "signoff.html").read_text()
    assert "6 instances were read back from the destination" in html
    assert "4 as sent, 2 different, 0 could not be compared" in html
    assert first in html and "Pixel Data bytes differ" in html
