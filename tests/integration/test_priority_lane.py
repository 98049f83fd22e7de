"""The priority lane against a simulated source and a real Orthanc: a patient's priors move
before the background queue, a study that reached the source after the census joins the
plan, and a patient already migrated moves nothing."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import hl7
import pytest
from hl7.client import MLLPClient

from runner.commands.census import build_plan
from runner.commands.priority import priority
from runner.commands.report import report_command
from runner.dicom.peer import Peer
from runner.execute.run import RunSummary, run_migration
from runner.execute.status import status_lines
from runner.morph.loaded import load_profile
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.qrscp import QRServer
from tests.integration.test_worklist_poll import entry
from tests.peers import OrthancProcess, WorklistProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
PATIENT = "PRIO-0042"
ONE_AT_A_TIME = {"open": {"max_concurrent_retrieves": 1, "min_concurrent_retrieves": 1,
                          "delay_seconds": 0}}


def archive(count: int, patient_studies: int) -> list[StudySpec]:
    """`count` studies, oldest first; the newest `patient_studies` are PATIENT's (the
    background queue, oldest first, reaches them last)."""
    specs = synthetic_archive("prio", count, date(2012, 1, 1), date(2022, 1, 1),
                              instances_per_series=1)
    return [dataclasses.replace(s, patient_id=PATIENT) if i >= count - patient_studies else s
            for i, s in enumerate(specs)]


@pytest.fixture
def listener_port() -> int:
    return free_port()


@pytest.fixture
def source(listener_port: int) -> Iterator[QRServer]:
    server = QRServer("SIMSRC", archive(12, 3), {"PACSMIG": ("127.0.0.1", listener_port)})
    server.studies = list(server.studies)
    server.start()
    yield server
    server.stop()


def profile(tmp_path: Path, source: QRServer, dest: OrthancProcess, listener_port: int,
            **sections: Any) -> Path:
    data = profile_data(tmp_path, [("sim", Peer("SIMSRC", "127.0.0.1", source.port))],
                        dest.peer, listener_port, **{"throttles": ONE_AT_A_TIME, **sections})
    return write_profile(tmp_path, data)


def run(path: Path, before: Callable[[], None] = lambda: None) -> RunSummary:
    loaded = load_profile(path)
    plan = build_plan(loaded, None)
    before()  # after the census
    return run_migration(loaded, plan, None, lambda _: None, False)


def ledger_rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def retrieve_order(tmp_path: Path) -> list[str]:
    return [uid for (uid,) in ledger_rows(
        tmp_path, "SELECT study_uid FROM retrieves WHERE purpose = 'migrate' ORDER BY started_at")]


def arrival(source: QRServer) -> StudySpec:
    """A study of the patient's that reaches the source after the census."""
    spec = StudySpec(seed="prio/arrival", patient_id=PATIENT, patient_name="LATE^ARRIVAL",
                     study_date=date(2023, 6, 1), modality="CT")
    source.studies.append(spec)  # type: ignore[attr-defined]
    source.by_uid[str(spec.study_uid)] = spec
    return spec


def test_a_request_kept_before_the_run_moves_the_priors_first_and_adds_a_late_arrival(
        tmp_path: Path, source: QRServer, listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    path = profile(tmp_path, source, orthanc_factory(aet="DEST"), listener_port)
    assert priority(path, PATIENT, date(2026, 12, 6), "", "", "", lambda _: None) == 0
    late: list[StudySpec] = []
    summary = run(path, lambda: late.append(arrival(source)))
    assert summary.complete, summary.lines()
    assert summary.studies == 13  # the plan's 12 and the late arrival
    theirs = {str(s.study_uid) for s in source.studies if s.patient_id == PATIENT}
    assert set(retrieve_order(tmp_path)[:4]) == theirs  # before every other study
    [(outcome, found, patient_id, masked)] = ledger_rows(
        tmp_path, "SELECT outcome, studies_found, patient_id, patient_masked"
                  " FROM priority_requests")
    assert (outcome, found, patient_id) == ("resolved", 4, None)  # the ID is not kept
    assert masked.endswith(PATIENT[-4:]) and PATIENT not in masked
    assert ledger_rows(tmp_path, "SELECT action, count(*) FROM priority_studies GROUP BY 1"
                                 " ORDER BY 1") == [("added", 1), ("queued", 3)]
    assert ledger_rows(tmp_path, f"SELECT status FROM reconciliation WHERE study_uid ="
                                 f" '{late[0].study_uid}'") == [("verified",)]
    report_command(load_profile(path), date_from=None, date_to=None, phase=None,
                   write=lambda _: None)
    html = (tmp_path / "reports" / "signoff.html").read_text(encoding="utf-8")
    lane = html[html.index("<h2>Priority lane</h2>"):]
    assert masked in lane and PATIENT not in html
    assert "Served (every prior verified)</th><td>1</td>" in lane
    status = "\n".join(status_lines(load_profile(path)))
    assert "Priority lane: 1 requests, 1 served, 0 not yet resolved; studies: 4 to move, " \
           "4 verified, 0 already there" in status


def test_a_request_for_a_patient_already_migrated_moves_nothing(
        tmp_path: Path, source: QRServer, listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    path = profile(tmp_path, source, orthanc_factory(aet="DEST"), listener_port)
    assert run(path).complete
    retrieves = len(retrieve_order(tmp_path))
    assert priority(path, PATIENT, None, "", "", "", lambda _: None) == 0
    assert run(path).complete
    assert len(retrieve_order(tmp_path)) == retrieves
    assert ledger_rows(tmp_path, "SELECT action, count(*) FROM priority_studies GROUP BY 1"
                       ) == [("verified", 3)]


ORDER = ("MSH|^~\\&|RIS|HOSP|PACSMIG|MIG|20261205101500||ORM^O01|ORD-{n}|P|2.3\r"
         "PID|1||{patient}^^^HOSP^MR||DOE^JANE\r"
         "ORC|NW|O-{n}|||SC||^^^20261207093000\r")


def send(port: int, message: str) -> tuple[str, datetime]:
    """Send over MLLP (python-hl7's client); MSA-1 of the answer and when it came."""
    with MLLPClient("127.0.0.1", port) as client:
        answer = client.send_message(message)
    at = datetime.now(UTC)
    return str(hl7.parse(answer.strip(b"\x0b\x1c\r").decode()).segment("MSA")[1]), at


def test_an_order_during_a_slow_migration_moves_the_priors_before_the_background_queue(
        tmp_path: Path, listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs = archive(40, 3)
    source = QRServer("SIMSRC", specs, {"PACSMIG": ("127.0.0.1", listener_port)}).start()
    dest = orthanc_factory(aet="DEST")
    hl7_port = free_port()
    try:
        path = profile(tmp_path, source, dest, listener_port, throttles={"open": {
            "max_concurrent_retrieves": 1, "min_concurrent_retrieves": 1,
            "delay_seconds": "0.05"}}, priority={"hl7": {"host": "127.0.0.1",
                                                         "port": hl7_port}})
        ended: list[RunSummary] = []
        runner = threading.Thread(target=lambda: ended.append(run(path)))
        runner.start()
        deadline = time.monotonic() + 60
        while dest.study_count() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        malformed, _ = send(hl7_port, "MSH|^~\\&|RIS|HOSP|||20261205||ORM^O01|BAD|P|2.3\r")
        code, acked = send(hl7_port, ORDER.format(n=1, patient=PATIENT))
        runner.join(timeout=120)
    finally:
        source.stop()
    assert (malformed, code) == ("AE", "AA")  # no PID: nothing kept, nothing changed
    assert ended and ended[0].complete, ended and ended[0].lines()
    order = retrieve_order(tmp_path)
    theirs = {str(s.study_uid) for s in specs if s.patient_id == PATIENT}
    started_before = ledger_rows(tmp_path, "SELECT count(*) FROM retrieves WHERE started_at"
                                           f" < '{acked.isoformat()}'")[0][0]
    assert started_before < 37  # the background queue had not reached them
    # next, but for the few the scheduler started while the lane asked the source
    assert {order.index(uid) for uid in theirs} <= set(range(started_before,
                                                              started_before + 6))
    assert ledger_rows(tmp_path, "SELECT count(*) FROM priority_requests") == [(1,)]
    [(outcome, to_move)] = ledger_rows(tmp_path, "SELECT outcome, studies_found"
                                                 " FROM priority_requests")
    assert (outcome, to_move) == ("resolved", 3)


def test_a_worklist_entry_and_a_clinic_list_move_their_patients_first(
        tmp_path: Path, source: QRServer, listener_port: int,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    worklist = WorklistProcess(tmp_path / "wl").start()
    try:
        today = datetime.now().date()
        worklist.add("ct", entry(PATIENT, today, "CT", "ACC1"))
        middle = source.studies[5]
        source.studies[5] = dataclasses.replace(middle, patient_id="CLINIC-7")
        source.by_uid[str(middle.study_uid)] = source.studies[5]
        clinic = tmp_path / "clinic.csv"
        clinic.write_text(f"patient_id,date\nCLINIC-7,{today.isoformat()}\nBAD*,x\n")
        path = profile(tmp_path, source, orthanc_factory(aet="DEST"), listener_port,
                       priority={"worklist": {"ae_title": worklist.aet, "host": "127.0.0.1",
                                              "port": worklist.port},
                                 "csv": str(clinic)})
        summary = run(path)
    finally:
        worklist.stop()
    assert summary.complete, summary.lines()
    firsts = {str(s.study_uid) for s in source.studies
              if s.patient_id in (PATIENT, "CLINIC-7")}
    assert set(retrieve_order(tmp_path)[:4]) == firsts
    assert ledger_rows(tmp_path, "SELECT trigger, outcome FROM priority_requests ORDER BY 1"
                       ) == [("csv", "resolved"), ("worklist", "resolved")]
    [(problem,)] = ledger_rows(tmp_path, "SELECT detail->>'problem' FROM events"
                                         " WHERE kind = 'priority_trigger_problem'")
    assert problem.startswith(f"{clinic}:3:1:")  # the bad row, where it is
