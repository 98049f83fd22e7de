"""Conflicts at the destination (destination.conflicts), Orthanc -> runner -> Orthanc.

The destination already holds, before the run, one instance of study A under another series
(Orthanc keeps both: it keys instances by patient, study, series and SOP UID together), one
instance of study B under another Patient ID, and one instance of study D under another
study (a study split at the old archive after the copy was made); study C it does not hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest
from pydicom.uid import generate_uid

from runner.sim.generate import StudySpec, make_study, to_bytes
from tests.integration.test_migration import make_site
from tests.peers import OrthancProcess

pytestmark = pytest.mark.peers


def _specs() -> list[StudySpec]:
    return [StudySpec(f"conflict-{name}", f"PID-{name}", "Doe^Jane", date(2017, 2, 3), "CT",
                      instances_per_series=3) for name in "ABCD"]


def _preload(destination: OrthancProcess, specs: list[StudySpec]) -> tuple[str, str, str]:
    """The conflicting copies: A's first instance in another series, B's first instance
    under another Patient ID, D's first instance in another study (and series). Their SOP
    Instance UIDs, and the study D's copy is in."""
    a_first = make_study(specs[0])[0]
    a_first.SeriesInstanceUID = generate_uid()
    b_first = make_study(specs[1])[0]
    b_first.PatientID = "SOMEONE-ELSE"
    d_first = make_study(specs[3])[0]
    d_first.StudyInstanceUID, d_first.SeriesInstanceUID = generate_uid(), generate_uid()
    for instance in (a_first, b_first, d_first):
        destination.upload(to_bytes(instance))
    return str(a_first.SOPInstanceUID), str(d_first.SOPInstanceUID), str(d_first.StudyInstanceUID)


def _held(destination: OrthancProcess, study_uid: str) -> list[tuple[str, str]]:
    """(SOP Instance UID, Series UID) of every instance the destination holds of a study."""
    out = []
    for item in destination.rest_get("/instances?expand"):
        tags = destination.rest_get(f"/instances/{item['ID']}/simplified-tags")
        if tags["StudyInstanceUID"] == study_uid:
            out.append((tags["SOPInstanceUID"], tags["SeriesInstanceUID"]))
    return sorted(out)


def _events(site_reports: Path) -> list[dict[str, str]]:
    with duckdb.connect(str(site_reports / "ledger.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT detail FROM events WHERE kind = 'conflict'").fetchall()
    return [json.loads(row[0]) for row in rows]


@pytest.mark.parametrize("policy", ["quarantine", "skip", "overwrite"])
def test_conflicting_copies_at_the_destination_follow_the_policy(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess], policy: str) -> None:
    specs = _specs()
    sections = {} if policy == "quarantine" else {"destination": {"conflicts": policy}}
    site = make_site(tmp_path, orthanc_factory, specs,
                     retries={"retrieve_attempts": 1, "backoff_seconds": 0.1}, **sections)
    a_conflict, d_conflict, d_elsewhere = _preload(site.destination, specs)
    a_before = _held(site.destination, specs[0].study_uid)
    b_before = _held(site.destination, specs[1].study_uid)
    elsewhere_before = _held(site.destination, d_elsewhere)

    result = site.pacsmig("run")

    statuses = {row[0]: row[4] for row in site.reconciliation()}
    a_after = _held(site.destination, specs[0].study_uid)
    b_after = _held(site.destination, specs[1].study_uid)
    d_after = _held(site.destination, specs[3].study_uid)
    assert statuses[specs[2].study_uid] == "verified"
    assert len(_held(site.destination, specs[2].study_uid)) == 3
    kinds = sorted((e["kind"], e["sop_instance_uid"] or "") for e in _events(site.reports))
    assert kinds == sorted([("series", a_conflict), ("patient", ""), ("study", d_conflict)])
    if policy == "overwrite":
        assert result.returncode == 0, result.stdout
        assert len(a_after) == 4  # Orthanc now holds both versions of the conflicting one
        assert len(d_after) == 3 and _held(site.destination, d_elsewhere) == elsewhere_before
        assert all(e["resolution"].startswith("overwritten") for e in _events(site.reports))
        return
    assert result.returncode == 1, result.stdout
    assert statuses[specs[1].study_uid] == "failed"  # a patient conflict is never skipped
    assert statuses[specs[3].study_uid] == "failed"  # nor one in another study
    assert b_after == b_before
    assert d_after == [] and _held(site.destination, d_elsewhere) == elsewhere_before
    if policy == "quarantine":
        assert statuses[specs[0].study_uid] == "failed"
        assert a_after == a_before  # nothing sent, the destination's copy untouched
        with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
            reasons = dict(conn.execute("SELECT study_uid, reason FROM studies").fetchall())
            stores = conn.execute("SELECT count(*) FROM forwards WHERE study_uid IN (?, ?, ?)",
                                  [specs[0].study_uid, specs[1].study_uid,
                                   specs[3].study_uid]).fetchone()
        assert stores == (0,)
        assert "conflict at the destination" in reasons[specs[0].study_uid]
        assert a_conflict in reasons[specs[0].study_uid]
        assert "another Patient ID" in reasons[specs[1].study_uid]
        assert d_conflict in reasons[specs[3].study_uid]
        assert f"in study {d_elsewhere}" in reasons[specs[3].study_uid]
    else:  # skip: the conflicting instance keeps the destination's copy, the rest is sent
        assert statuses[specs[0].study_uid] == "verified"
        assert len(a_after) == 3 and (a_conflict, a_before[0][1]) in a_after
    report = site.pacsmig("report")
    assert report.returncode in (0, 1), report.stderr
    html = (site.reports / "signoff.html").read_text()
    assert "Conflicts at the destination" in html and a_conflict in html and d_conflict in html
    assert "SOMEONE-ELSE" not in html and "PID-B" not in html
