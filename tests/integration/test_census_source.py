"""The census against real sources: every study the old PACS holds is planned or excluded
with its reason, migrated, and counted in the sign-off report; `sync` catches up.

The archive holds what fifteen-year-old PACS hold besides dated studies: a study without a
StudyDate element, one with an empty StudyDate, one with a malformed one ("2011"), and one
dated before the profile's window. Orthanc (which caps answers with LimitFindResults and a
0xFE00 status) and DCMTK's dcmqrscp (no cap) are the sources.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, make_study
from tests.peers import DcmqrscpProcess, OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
ROOT = Path(__file__).parents[2]

# How each study's date is held at the source: a date, or what an old PACS holds instead.
DATES: tuple[tuple[str, str | None], ...] = (
    ("dated-1", "20100304"), ("dated-2", "20110517"), ("dated-3", "20120101"),
    ("dated-4", "20120102"), ("dated-5", "20150808"), ("dated-6", "20190101"),
    ("no-element", None), ("empty", ""), ("malformed", "2011"),
    ("before-window", "19950505"),
)


@dataclass(frozen=True)
class Archive:
    files: list[Path]
    studies: dict[str, str]  # study UID -> how it is dated
    sops: dict[str, list[str]]  # study UID -> SOP Instance UIDs


def make_archive(folder: Path, seed: str = "census") -> Archive:
    """The ten studies of DATES, two instances each, written as Part 10 files."""
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    studies: dict[str, str] = {}
    sops: dict[str, list[str]] = {}
    for n, (label, held) in enumerate(DATES):
        spec = StudySpec(seed=f"{seed}-{label}", patient_id=f"PID{n:03d}",
                         patient_name="Test^Census", study_date=date(2012, 6, 1),
                         modality="CT", instances_per_series=2)
        studies[str(spec.study_uid)] = label
        sops[str(spec.study_uid)] = [str(u) for u in spec.sop_uids]
        for i, ds in enumerate(make_study(spec)):
            if held is None:
                del ds.StudyDate
            else:
                ds.StudyDate = held
            path = folder / f"{n:02d}-{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
    return Archive(files, studies, sops)


def pacsmig(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def census_profile(tmp_path: Path, source: Peer, destination: Peer, listener_port: int,
                   **inventory: Any) -> Path:
    data = profile_data(tmp_path, [("src", source)], destination, listener_port,
                        source={"inventory": {"from": "2000-01-01", "to": "today",
                                              "window_days": 365, **inventory}})
    return write_profile(tmp_path, data)


def reconciliation(tmp_path: Path) -> dict[str, tuple[Any, ...]]:
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT study_uid, status, source_instances, destination_instances,"
                            " at_source, excluded_because FROM reconciliation_detail").fetchall()
    return {row[0]: row[1:] for row in rows}


def orthanc_source(factory: Callable[..., OrthancProcess], listener_port: int,
                   limit: int = 0) -> OrthancProcess:
    return factory(aet="OLDPACS", modalities={"pacsmig": Peer("PACSMIG", "127.0.0.1",
                                                              listener_port)},
                   extra_config={"LimitFindResults": limit})


def test_orthanc_source_capping_answers_is_fully_planned_migrated_and_reported(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    archive = make_archive(tmp_path / "files")
    listener_port = free_port()
    source = orthanc_source(orthanc_factory, listener_port, limit=3)
    source.upload_all(archive.files)
    destination = orthanc_factory(aet="NEWVNA")
    profile = census_profile(tmp_path, source.peer, destination.peer, listener_port)

    planned = pacsmig("plan", str(profile), "--json", str(tmp_path / "plan.json"))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    document = json.loads((tmp_path / "plan.json").read_text())
    census = document["census"]
    assert census["studies"] == source.study_count() == 10  # Orthanc's REST API: the truth
    assert (census["planned"], census["undated_planned"], census["excluded"]) == (9, 3, 1)
    assert census["complete"]
    [excluded] = document["excluded"]
    assert archive.studies[excluded["study_uid"]] == "before-window"
    assert "1995-05-05" in excluded["detail"] and "before the inventory's 'from'" in \
        excluded["detail"]
    assert "Census:" in planned.stdout and "undated" in planned.stdout

    result = pacsmig("run", str(profile))
    assert result.returncode == 0, result.stdout + result.stderr
    expected = sorted(u for uid, label in archive.studies.items() if label != "before-window"
                      for u in archive.sops[uid])
    assert destination.instances() == expected

    rows = reconciliation(tmp_path)
    assert len(rows) == source.study_count()
    for uid, label in archive.studies.items():
        status, source_count, at_destination, at_source, because = rows[uid]
        assert at_source == "present"
        if label == "before-window":
            assert (status, at_destination) == ("excluded", 0) and "1995-05-05" in because
        else:
            assert (status, source_count, at_destination) == ("verified", 2, 2), label

    reported = pacsmig("report", str(profile))
    assert reported.returncode == 0, reported.stdout + reported.stderr
    html = (tmp_path / "reports" / "signoff.html").read_text()
    held = source.study_count()  # the old PACS's own count, from its REST API
    assert f"The source holds {held} studies ({2 * held} instances): 9 planned, 1 excluded" \
        in html
    assert "9 verified at the destination, 0 not yet verified" in html
    assert "Census of the source" in html and "outside the inventory window" in html
    assert "What the source holds, by study year" in html
    assert "Scope and method" in html and "studies dated 2000-01-01 to " in html
    assert str(profile.resolve()) in html  # the profile's absolute path
    csv_text = (tmp_path / "reports" / "reconciliation.csv").read_text()
    assert csv_text.splitlines()[0].endswith("status,study_date,modality,at_source,"
                                             "excluded_because,accession_before,"
                                             "accession_after")
    assert len(csv_text.splitlines()) == 1 + 10

    status = pacsmig("status", str(profile))
    assert status.returncode == 0, status.stderr
    assert "Source: holds 10 studies / 20 instances" in status.stdout
    assert "planned 9, excluded 1, verified 9, not yet verified 0" in status.stdout


def test_dcmqrscp_source_undated_studies_are_found_planned_and_migrated(
        tmp_path: Path, dcmqrscp_factory: Callable[..., DcmqrscpProcess],
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    archive = make_archive(tmp_path / "files", seed="dcmqr")
    listener_port = free_port()
    source = dcmqrscp_factory(aet="QRSCP", move_destinations={
        "pacsmig": Peer("PACSMIG", "127.0.0.1", listener_port)})
    source.add_files(archive.files)
    destination = orthanc_factory(aet="NEWVNA")
    profile = census_profile(tmp_path, source.peer, destination.peer, listener_port)

    result = pacsmig("run", str(profile))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Census: the source holds 10 studies: 9 planned (3 without a usable date), " \
           "1 excluded" in result.stdout
    rows = reconciliation(tmp_path)
    assert len(rows) == 10
    statuses = {archive.studies[uid]: row[0] for uid, row in rows.items()}
    assert statuses == {label: "excluded" if label == "before-window" else "verified"
                        for label, _ in DATES}
    assert len(destination.instances()) == 18


def test_image_level_counts_give_every_study_a_source_count_at_dcmqrscp(
        tmp_path: Path, dcmqrscp_factory: Callable[..., DcmqrscpProcess]) -> None:
    archive = make_archive(tmp_path / "files", seed="image-counts")
    source = dcmqrscp_factory(aet="QRSCP")
    source.add_files(archive.files)
    profile = census_profile(tmp_path, source.peer, Peer("NOBODY", "127.0.0.1", free_port()),
                             free_port(), instance_counts="image")
    planned = pacsmig("plan", str(profile), "--json", str(tmp_path / "plan.json"))
    assert planned.returncode == 0, planned.stderr
    census = json.loads((tmp_path / "plan.json").read_text())["census"]
    assert (census["studies"], census["instances"], census["unknown_count_studies"]) == \
        (10, 20, 0)


def test_windows_only_census_leaves_the_undated_studies_out_and_says_so(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    archive = make_archive(tmp_path / "files", seed="windows")
    listener_port = free_port()
    source = orthanc_source(orthanc_factory, listener_port)
    source.upload_all(archive.files)
    profile = census_profile(tmp_path, source.peer, Peer("NOBODY", "127.0.0.1", free_port()),
                             listener_port, census="windows")
    planned = pacsmig("plan", str(profile), "--json", str(tmp_path / "plan.json"))
    assert planned.returncode == 0, planned.stderr
    document = json.loads((tmp_path / "plan.json").read_text())
    found = {uid for phase in document["phases"] for uid in phase["order"]}
    found |= {e["study_uid"] for e in document["excluded"]}
    missed = {label for uid, label in archive.studies.items() if uid not in found}
    # Orthanc compares dates as text, so a window may match "2011": the studies with no date
    # at all and the one dated before the window are surely missed.
    surely = {"no-element", "empty", "before-window"}
    assert surely <= missed <= surely | {"malformed"}
    assert "studies without a usable date are not searched" in document["census"]["method"]


def test_sync_moves_what_the_source_received_since_and_a_second_sync_moves_nothing(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    archive = make_archive(tmp_path / "files", seed="sync")
    listener_port = free_port()
    source = orthanc_source(orthanc_factory, listener_port)
    first = [p for p in archive.files if not p.name.endswith("-1.dcm")]  # one instance each
    source.upload_all(first)
    destination = orthanc_factory(aet="NEWVNA")
    profile = census_profile(tmp_path, source.peer, destination.peer, listener_port)
    result = pacsmig("run", str(profile))
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(destination.instances()) == 9

    # The source goes on: the second instance of every study, and a new study.
    source.upload_all([p for p in archive.files if p.name.endswith("-1.dcm")])
    added = make_archive(tmp_path / "added", seed="sync-new")
    new_study = next(uid for uid, label in added.studies.items() if label == "dated-2")
    source.upload_all([p for p in added.files if p.name.startswith("01-")])

    synced = pacsmig("sync", str(profile))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "1 new, 10 changed" in synced.stdout  # the excluded study grew too
    expected = sorted([u for uid, label in archive.studies.items() if label != "before-window"
                       for u in archive.sops[uid]] + added.sops[new_study])
    assert destination.instances() == expected
    received = _receipts(tmp_path)

    again = pacsmig("sync", str(profile))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 new, 0 changed" in again.stdout and "0 gone" in again.stdout
    assert _receipts(tmp_path) == received  # nothing retrieved again
    rows = reconciliation(tmp_path)
    assert sum(1 for row in rows.values() if row[0] == "verified") == 10

    # A partial sync: studies dated from 2019 on; the older ones are not taken for gone.
    later = make_archive(tmp_path / "later", seed="sync-later")
    recent = next(uid for uid, label in later.studies.items() if label == "dated-6")
    source.upload_all([p for p in later.files if p.name.startswith("05-")])
    partial = pacsmig("sync", str(profile), "--since", "2019-01-01")
    assert partial.returncode == 0, partial.stdout + partial.stderr
    assert "studies dated from 2019-01-01: 1 new, 0 changed" in partial.stdout
    assert "0 gone" in partial.stdout
    assert set(later.sops[recent]) <= set(destination.instances())
    rows = reconciliation(tmp_path)
    assert {row[3] for row in rows.values()} == {"present"}

    reported = pacsmig("report", str(profile))
    html = (tmp_path / "reports" / "signoff.html").read_text()
    assert reported.returncode == 0, reported.stdout
    assert html.count("<td>sync</td>") == 3


def test_a_study_deleted_at_the_source_is_reported_gone_and_kept_at_the_destination(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    archive = make_archive(tmp_path / "files", seed="gone")
    listener_port = free_port()
    source = orthanc_source(orthanc_factory, listener_port)
    source.upload_all(archive.files)
    destination = orthanc_factory(aet="NEWVNA")
    profile = census_profile(tmp_path, source.peer, destination.peer, listener_port)
    assert pacsmig("run", str(profile)).returncode == 0
    victim = next(uid for uid, label in archive.studies.items() if label == "dated-3")
    [orthanc_id] = source.rest_post("/tools/lookup", victim.encode())
    source.rest_delete(f"/studies/{orthanc_id['ID']}")

    synced = pacsmig("sync", str(profile))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "1 gone from the source" in synced.stdout
    assert set(archive.sops[victim]) <= set(destination.instances())
    assert reconciliation(tmp_path)[victim][:4] == ("verified", 2, 2, "gone")


def test_a_source_that_refuses_the_calling_ae_fails_the_plan_after_a_handful_of_queries(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    source = orthanc_factory(aet="OLDPACS", extra_config={"DicomAlwaysAllowFind": False,
                                                          "DicomAlwaysAllowEcho": True})
    source.upload_all(make_archive(tmp_path / "files", seed="refused").files)
    profile = census_profile(tmp_path, source.peer, Peer("NOBODY", "127.0.0.1", free_port()),
                             free_port(), window_days=1)
    planned = pacsmig("plan", str(profile), timeout=120)
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert "refused the census" in planned.stderr
    assert "Traceback" not in planned.stderr
    finds = source.log.read_text().count("C-FIND")
    assert finds <= 4, f"{finds} C-FIND log lines at a source that refuses them"


def _receipts(tmp_path: Path) -> int:
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM receipts").fetchone()
    return int(row[0]) if row else 0
