"""No patient identifier leaves the images: after a real run (with a failed study) and its
reports, no patient name, patient ID, birth date or accession number appears in the console
output, in the logs at DEBUG (the runner's and pynetdicom's), in any ledger table or in the
ledger file's bytes, or in any report file (CSV, Parquet, HTML).

The run is `python -m runner run` in a subprocess, from a simulated source PACS whose
synthetic patients carry names like "Müller^Jürgen", to a real Orthanc.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.qrscp import Behaviour, MoveDirective, QRServer
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.peers
# `python -m runner`, with every logger (the runner's and pynetdicom's) at DEBUG on stderr
WITH_DEBUG_LOGS = ("import logging, sys; logging.basicConfig(level=logging.DEBUG, "
                   "format='%(levelname)s %(name)s %(message)s'); sys.argv[0] = 'pacsmig'; "
                   "from runner.cli import main; main()")


class FailsOne(Behaviour):
    """Refuses every retrieve of one study (0xC000), so reasons reach the ledger and report."""

    def __init__(self, victim: str) -> None:
        self.victim = victim

    def before_move(self, spec: StudySpec) -> MoveDirective:
        return MoveDirective(status=0xC000) if spec.study_uid == self.victim else MoveDirective()


def identifiers(specs: list[StudySpec]) -> dict[str, str]:
    """Every identifying value of the synthetic patients, by what it is."""
    found: dict[str, str] = {}
    for spec in specs:
        family, given = spec.patient_name.split("^")
        birth = spec.patient_birth_date
        found[spec.patient_name] = "patient name"
        found[f"{family} {given}"] = "patient name"
        found[f"{given} {family}"] = "patient name"
        found[spec.patient_id] = "patient ID"
        found[birth.strftime("%Y%m%d")] = "birth date"
        found[birth.isoformat()] = "birth date"
        found[birth.strftime("%d/%m/%Y")] = "birth date"
        found[spec.accession_number] = "accession number"
    return found


def leaks(where: str, text: str, secrets: dict[str, str]) -> list[str]:
    return [f"{what} {value!r} in {where}" for value, what in secrets.items() if value in text]


@pytest.fixture
def source_specs() -> list[StudySpec]:
    return synthetic_archive("leaks", 6, date(2013, 1, 1), date(2023, 1, 1),
                             series_count=2, instances_per_series=2)


@pytest.fixture
def source(source_specs: list[StudySpec]) -> Iterator[tuple[QRServer, int]]:
    listener_port = free_port()
    server = QRServer("SIMPACS", source_specs, {"PACSMIG": ("127.0.0.1", listener_port)},
                      behaviour=FailsOne(source_specs[2].study_uid)).start()
    yield server, listener_port
    server.stop()


def pacsmig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITH_DEBUG_LOGS, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=180, check=False)


def dump_ledger(path: Path) -> str:
    """Every row of every table and view of the ledger, as text."""
    lines: list[str] = []
    with duckdb.connect(str(path), read_only=True) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name").fetchall()]
        for name in names:
            lines.append(f"## {name}")
            lines += [repr(row) for row in conn.execute(f'SELECT * FROM "{name}"').fetchall()]
    assert {"studies", "retrieves", "receipts", "forwards", "events"} <= set(names), names
    return "\n".join(lines)


def dump_parquet(path: Path) -> str:
    with duckdb.connect() as conn:
        rows = conn.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    return "\n".join(repr(row) for row in rows)


def test_run_and_reports_hold_no_patient_identifier_anywhere(
        tmp_path: Path, source_specs: list[StudySpec], source: tuple[QRServer, int],
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    server, listener_port = source
    destination = orthanc_factory(aet="NEWVNA")
    data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", server.port))],
                        destination.peer, listener_port,
                        retries={"backoff_seconds": 0.1, "retrieve_attempts": 2})
    profile = write_profile(tmp_path, data)
    secrets = identifiers(source_specs)

    run = pacsmig("run", str(profile))
    report = pacsmig("report", str(profile))
    status = pacsmig("status", str(profile))

    assert run.returncode == 1, run.stdout + run.stderr  # the refused study failed
    assert "5 of 6 studies verified" in run.stdout
    # the logs were captured, at DEBUG level (a run logs from INFO up; pynetdicom, whose
    # DEBUG lines this once looked for, no longer takes part in a run)
    assert "INFO runner." in run.stderr
    assert len(destination.instances()) == 5 * 4  # the images did travel, names and all
    travelled = {p["MainDicomTags"]["PatientID"] for p in destination.rest_get("/patients?expand")}
    assert travelled and travelled <= set(secrets)  # the values looked for are the real ones
    reports = tmp_path / "reports"
    files = sorted(p for p in reports.rglob("*") if p.is_file())
    kinds = {p.suffix for p in files}
    assert {".csv", ".parquet", ".html", ".duckdb"} <= kinds, files

    found: list[str] = []
    for name, result in (("run", run), ("report", report), ("status", status)):
        found += leaks(f"`{name}` stdout", result.stdout, secrets)
        found += leaks(f"`{name}` stderr (logs)", result.stderr, secrets)
    ledger = reports / "ledger.duckdb"
    found += leaks("the ledger's tables", dump_ledger(ledger), secrets)
    for path in files:
        raw = path.read_bytes()
        found += [f"{what} {value!r} in the bytes of {path.name}"
                  for value, what in secrets.items() if value.encode() in raw]
        if path.suffix == ".parquet":
            found += leaks(path.name, dump_parquet(path), secrets)
        elif path.suffix in {".csv", ".html", ".json", ".txt"}:
            found += leaks(path.name, path.read_text(encoding="utf-8"), secrets)
    assert not found, "\n".join(found)
