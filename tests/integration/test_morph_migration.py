"""Morphing on the way through, proven at the destination tag by tag (Orthanc -> Orthanc)."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable
from datetime import date
from io import BytesIO
from pathlib import Path

import duckdb
import pytest
from pydicom import Dataset, dcmread

from runner.commands.run import run as run_command
from runner.morph import rules as rules_module
from runner.morph.loaded import load_profile
from runner.morph.tables import LookupTable
from runner.sim.generate import StudySpec, make_study, synthetic_archive, to_bytes
from tests.integration.test_migration import make_site
from tests.peers import OrthancProcess

pytestmark = pytest.mark.peers

RULES = [
    {"when": {"Modality": ["CR", "DX"]}, "set": {"InstitutionName": "Example Hospital"}},
    {"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$", "with": r"EXH\1"}},
    {"map": {"tag": "PatientID", "table": "patient-ids.csv", "missing": "keep"}},
    {"delete": ["PatientBirthDate"]},
    {"remove_private": True},
]


def add_private_tags(ds: Dataset) -> None:
    block = ds.private_block(0x0009, "ACME LEGACY PACS", create=True)
    block.add_new(0x01, "LO", "internal archive key")


def files_by_sop(orthanc: OrthancProcess) -> dict[str, Dataset]:
    out: dict[str, Dataset] = {}
    for item in orthanc.rest_get("/instances?expand"):
        url = f"http://127.0.0.1:{orthanc.http_port}/instances/{item['ID']}/file"
        with urllib.request.urlopen(url, timeout=30) as response:
            ds = dcmread(BytesIO(response.read()))
        out[str(ds.SOPInstanceUID)] = ds
    return out


def without_meta(ds: Dataset) -> dict[int, object]:
    return {int(e.tag): e.value for e in ds if e.tag.group != 0x0002}


def test_rules_are_applied_on_the_way_and_every_instance_matches_tag_by_tag(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs: list[StudySpec] = synthetic_archive("morph", 4, date(2015, 1, 1), date(2020, 1, 1),
                                               modalities=("CR", "CT"), instances_per_series=2)
    mapped = specs[0].patient_id
    (tmp_path / "patient-ids.csv").write_text(f"from,to\n{mapped},9990001234\n")
    site = make_site(tmp_path, orthanc_factory, specs, prepare=add_private_tags,
                     morphing=RULES)
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr

    rules = load_profile(site.profile).rules
    source, destination = files_by_sop(site.source), files_by_sop(site.destination)
    assert sorted(source) == sorted(destination)
    for sop, original in source.items():
        expected = dcmread(BytesIO(_bytes(original)))
        assert rules.apply(expected).ok
        assert without_meta(destination[sop]) == without_meta(expected), sop
    modalities = {str(d.Modality): str(d.InstitutionName) for d in destination.values()}
    assert modalities.get("CR", "Example Hospital") == "Example Hospital"
    assert all(str(d.AccessionNumber).startswith("EXH") for d in destination.values())
    assert all("PatientBirthDate" not in d for d in destination.values())
    assert all(any(e.tag.is_private for e in d) for d in source.values())
    assert not any(e.tag.is_private for d in destination.values() for e in d)
    assert {str(d.PatientID) for d in destination.values()
            if d.StudyInstanceUID == specs[0].study_uid} == {"9990001234"}


def _bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_destination_keeping_an_older_copy_under_the_same_uid_is_caught(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs = synthetic_archive("older-copy", 2, date(2015, 1, 1), date(2020, 1, 1),
                              modalities=("CT",), instances_per_series=2)
    rules = [{"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$", "with": r"EXH\1"}}]
    site = make_site(tmp_path, orthanc_factory, specs, morphing=rules,
                     retries={"retrieve_attempts": 2, "backoff_seconds": 0.1})
    stale = make_study(specs[0])[0]  # the un-morphed copy, already at the destination
    site.destination.upload(to_bytes(stale))

    result = site.pacsmig("run")
    assert result.returncode == 1
    statuses = {row[0]: row[4] for row in site.reconciliation()}
    assert statuses == {specs[0].study_uid: "failed", specs[1].study_uid: "verified"}
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        reason = conn.execute("SELECT reason FROM studies WHERE study_uid = ?",
                              [specs[0].study_uid]).fetchone()
        details = conn.execute("SELECT detail FROM verifications WHERE study_uid = ?",
                               [specs[0].study_uid]).fetchall()
    assert reason is not None and "different version under the same SOP Instance UID" in reason[0]
    # Orthanc answers AccessionNumber from its study record, kept from the older copy: it
    # reports the old value for every instance of the study, and both are flagged.
    assert len(details) == 2 and all("instances hold other values" in d[0] for d in details)


def test_a_run_reads_each_lookup_table_once(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The command compiles the rules once; the plan, the engine, the verification and the
    forwarding workers (forked or started later) all use that RuleSet, read once."""
    specs = synthetic_archive("tables", 2, date(2015, 1, 1), date(2020, 1, 1),
                              instances_per_series=2)
    table = tmp_path / "patient-ids.csv"
    table.write_text(f"from,to\n{specs[0].patient_id},9990001234\n")
    site = make_site(tmp_path, orthanc_factory, specs, morphing=[
        {"map": {"tag": "PatientID", "table": "patient-ids.csv", "missing": "keep"}}])
    reads = tmp_path / "table-reads.log"
    real_load_table = rules_module.load_table

    def counting_load_table(path: Path) -> LookupTable:
        with reads.open("a", encoding="utf-8") as log:  # seen from forked workers too
            log.write(f"{os.getpid()} {path}\n")
        return real_load_table(path)

    monkeypatch.setattr(rules_module, "load_table", counting_load_table)
    lines: list[str] = []
    code = run_command(site.profile, None, None, lines.append, False, lines.append)

    assert code == 0, lines
    assert reads.read_text(encoding="utf-8").splitlines() == [f"{os.getpid()} {table}"]
    assert {str(d.PatientID) for d in files_by_sop(site.destination).values()
            if d.StudyInstanceUID == specs[0].study_uid} == {"9990001234"}
