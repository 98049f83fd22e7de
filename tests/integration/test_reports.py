"""Reports on a ledger from a real run: Orthanc source -> runner -> Orthanc destination whose
Lua filter drops one modality (it answers success, so only verification catches it), and an
inventory naming a study the source has lost; the report files agree with each other and
with the destination, and show no patient data."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from runner.commands.report import ReportResult, report_command
from runner.dicom.peer import Peer
from runner.morph.loaded import load_profile
from runner.sim.generate import StudySpec, make_study, synthetic_archive, to_bytes
from tests.conftest import require_peer_binaries
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

ROOT = Path(__file__).parents[2]
REFUSED_MODALITY = "MR"
REFUSE_LUA = f"""
function ReceivedInstanceFilter(dicom, origin, info)
  return dicom.Modality ~= '{REFUSED_MODALITY}'
end
"""
LOST_STUDY = "1.2.826.0.1.3680043.8.498.999999"
EXTERNAL = re.compile(r"https?://|\bsrc=|\bhref=|url\(|@import", re.IGNORECASE)
pytestmark = pytest.mark.peers


@dataclass
class Migrated:
    """A finished run: its peers, profile, specs and the report it led to."""

    source: OrthancProcess
    destination: OrthancProcess
    specs: list[StudySpec]
    run: subprocess.CompletedProcess[str]
    result: ReportResult
    folder: Path


def specs_with_every_modality() -> list[StudySpec]:
    specs = synthetic_archive("reports", 6, date(2012, 1, 1), date(2023, 12, 31),
                              modalities=("CT", "MR", "CR"), series_count=2,
                              instances_per_series=2)
    assert REFUSED_MODALITY in {s.modality for s in specs} != {REFUSED_MODALITY}
    return specs


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory,
             orthanc_module_factory: Callable[..., OrthancProcess]) -> Migrated:
    tmp_path = tmp_path_factory.mktemp("reports")
    specs = specs_with_every_modality()
    listener_port = free_port()
    source = orthanc_module_factory(
        aet="OLDPACS", modalities={"pacsmig": Peer("PACSMIG", "127.0.0.1", listener_port)})
    lua = tmp_path / "refuse.lua"
    lua.write_text(REFUSE_LUA)
    destination = orthanc_module_factory(aet="NEWVNA", extra_config={"LuaScripts": [str(lua)]})
    source.upload_all(to_bytes(ds) for s in specs for ds in make_study(s))
    data = profile_data(tmp_path, [("old1", source.peer)], destination.peer, listener_port,
                        retries={"retrieve_attempts": 1, "store_attempts": 2,
                                 "verify_attempts": 1, "backoff_seconds": 0})
    profile = write_profile(tmp_path, data)
    inventory = write_inventory(tmp_path / "inventory.csv", specs)
    run = subprocess.run([sys.executable, "-m", "runner", "run", str(profile), "--inventory",
                          str(inventory)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=False)
    assert "Run finished" in run.stdout, run.stdout + run.stderr
    loaded = load_profile(profile)
    result = report_command(loaded, date_from=None, date_to=None, phase=None,
                            write=lambda line: None)
    return Migrated(source, destination, specs, run, result, loaded.profile.reports.dir)


@pytest.fixture(scope="module")
def orthanc_module_factory(tmp_path_factory: pytest.TempPathFactory,
                           ) -> Iterator[Callable[..., OrthancProcess]]:
    """Like conftest's orthanc_factory, for the module: one migration serves every test."""
    require_peer_binaries()
    started: list[OrthancProcess] = []
    root = tmp_path_factory.mktemp("orthanc")

    def start(**kwargs: Any) -> OrthancProcess:
        orthanc = OrthancProcess(workdir=root / str(len(started)), **kwargs)
        started.append(orthanc)
        return orthanc.start()

    yield start
    for orthanc in started:
        orthanc.terminate()
    for orthanc in started:
        orthanc.stop()


def write_inventory(path: Path, specs: list[StudySpec]) -> Path:
    """The specs as an inventory CSV, alternately local and nearline, plus a study the
    source has lost (it is in the inventory but not on the source any more)."""
    lines = ["StudyInstanceUID,StudyDate,Modality,Instances,SizeMB,Location,Device"]
    for index, spec in enumerate(specs):
        tier = "local" if index % 2 == 0 else "nearline"
        lines.append(f"{spec.study_uid},{spec.study_date:%Y%m%d},{spec.modality},"
                     f"{spec.instance_count},0.1,{tier},old1")
    lines.append(f"{LOST_STUDY},20150101,CT,3,0.1,local,old1")
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "reconciliation.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def headline_row(html: str, label: str) -> list[str]:
    match = re.search(rf"<tr><td>{label}</td>(.*?)</tr>", html)
    assert match, label
    return re.findall(r'<td class="num">([^<]*)</td>', match.group(1))


def test_the_refused_modality_and_the_lost_study_are_the_reported_discrepancies(
        migrated: Migrated) -> None:
    failed = {str(s.study_uid) for s in migrated.specs if s.modality == REFUSED_MODALITY}
    failed.add(LOST_STUDY)
    rows = csv_rows(migrated.folder)
    assert migrated.run.returncode == 1, migrated.run.stdout + migrated.run.stderr
    assert {r["study_uid"] for r in rows if r["status"] != "verified"} == failed
    assert len(rows) == len(migrated.specs) + 1
    assert migrated.result.discrepancies
    assert migrated.result.not_verified == len(failed)


def test_csv_instance_counts_agree_with_the_destination(migrated: Migrated) -> None:
    rows = csv_rows(migrated.folder)
    held = len(migrated.destination.instances())
    assert sum(int(r["destination_instances"]) for r in rows) == held
    assert migrated.result.destination_instances == held
    assert held == sum(s.instance_count for s in migrated.specs
                       if s.modality != REFUSED_MODALITY)
    by_uid = {r["study_uid"]: r for r in rows}
    for spec in migrated.specs:
        row = by_uid[spec.study_uid]
        assert (int(row["source_instances"]), int(row["received_instances"])) == (
            spec.instance_count, spec.instance_count)


def test_html_headline_and_exceptions_agree_with_the_csv(migrated: Migrated) -> None:
    rows = csv_rows(migrated.folder)
    html = (migrated.folder / "signoff.html").read_text()
    verified = [r for r in rows if r["status"] == "verified"]
    studies = headline_row(html, "Studies")
    instances = headline_row(html, "Instances")
    assert studies[0] == f"{len(rows):,}" and studies[3] == f"{len(verified):,}"
    assert instances[0] == f"{sum(int(r['source_instances']) for r in rows):,}"
    assert instances[1] == f"{sum(int(r['received_instances']) for r in rows):,}"
    assert instances[3] == f"{sum(int(r['destination_instances']) for r in verified):,}"
    unverified = [r["study_uid"] for r in rows if r["status"] != "verified"]
    assert f"Exceptions: {len(unverified):,} studies not verified" in html
    exceptions = html[html.index("Exceptions: "):html.index(">Sign-off<")]
    assert all(uid in exceptions for uid in unverified)
    assert "Destination checks that came back short" in html


def test_every_report_file_is_free_of_patient_identifiers(migrated: Migrated) -> None:
    forbidden = set()
    for spec in migrated.specs:
        forbidden |= {spec.patient_id, spec.patient_name, spec.patient_name.replace("^", " "),
                      spec.accession_number, spec.patient_birth_date.strftime("%Y%m%d"),
                      spec.patient_birth_date.isoformat()}
    assert len(migrated.result.files) == 4
    for path in migrated.result.files:
        text = parquet_text(path) if path.suffix == ".parquet" else path.read_text()
        found = sorted(value for value in forbidden if value in text)
        assert found == [], f"{path.name} shows {found}"


def parquet_text(path: Path) -> str:
    with duckdb.connect() as conn:
        rows = conn.execute(f"SELECT * FROM '{path}'").fetchall()
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


def test_the_signoff_is_self_contained(migrated: Migrated) -> None:
    html = (migrated.folder / "signoff.html").read_text()
    assert not EXTERNAL.search(html)
    assert "<script" not in html and "<svg" in html
