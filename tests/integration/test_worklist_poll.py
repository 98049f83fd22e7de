"""The worklist trigger against DCMTK's wlmscpfs: procedures scheduled from today to
`days_ahead` days on become priority requests, the same step polled again is the same
request, and a worklist that is down is a failed poll, never an exception."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from runner.dicom.peer import DicomSettings
from runner.execute.priority.worklist import WorklistPoller
from runner.profile.models import PriorityWorklist
from tests.peers import WorklistProcess, free_port

pytestmark = pytest.mark.peers
TODAY = date(2026, 12, 5)
SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=5, network_timeout=5,
                         connection_timeout=2)


def entry(patient: str, day: date, modality: str, accession: str) -> Dataset:
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = "CT1"
    step.ScheduledProcedureStepStartDate = f"{day:%Y%m%d}"
    step.ScheduledProcedureStepStartTime = "090000"
    step.ScheduledProcedureStepID = f"SPS-{accession}"
    step.ScheduledProcedureStepDescription = "scan"
    step.ScheduledPerformingPhysicianName = "SMITH"
    step.ScheduledStationName = "STN1"
    step.ScheduledProcedureStepLocation = "B1"
    step.PreMedication = ""
    step.CommentsOnTheScheduledProcedureStep = ""
    step.RequestedContrastAgent = ""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "DOE^JANE"
    ds.PatientID = patient
    ds.IssuerOfPatientID = "HOSP"
    ds.AccessionNumber = accession
    ds.RequestedProcedureID = f"RP-{accession}"
    ds.StudyInstanceUID = f"1.2.3.{accession[-1]}"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.RequestingPhysician = "JONES"
    ds.ReferringPhysicianName = "JONES"
    ds.RequestedProcedureDescription = "scan"
    ds.RequestedProcedurePriority = "LOW"
    ds.ScheduledProcedureStepSequence = DicomSequence([step])
    return ds


@pytest.fixture
def worklist(require_peers: None, tmp_path: Path) -> Iterator[WorklistProcess]:
    server = WorklistProcess(tmp_path / "wl").start()
    server.add("today", entry("PAT-1", TODAY, "CT", "ACC1"))
    server.add("tomorrow", entry("PAT-2", TODAY + timedelta(days=1), "MR", "ACC2"))
    server.add("later", entry("PAT-3", TODAY + timedelta(days=5), "CT", "ACC3"))
    yield server
    server.stop()


def poller(server_port: int, aet: str = "WORKLIST", **keys: object) -> WorklistPoller:
    section = PriorityWorklist(ae_title=aet, host="127.0.0.1", port=server_port,
                               **keys)  # type: ignore[arg-type]
    return WorklistPoller(section, "PACSMIG", SETTINGS, lambda: TODAY)


def test_steps_scheduled_within_days_ahead_are_requests_due_on_their_start(
        worklist: WorklistProcess) -> None:
    now = datetime.now(UTC)
    polled = poller(worklist.port, days_ahead=1).poll(now)
    assert polled.problem == ""
    found = sorted((r.patient_id, r.issuer, r.due, r.modality) for r in polled.requests)
    assert found == [("PAT-1", "HOSP", TODAY, "CT"),
                     ("PAT-2", "HOSP", TODAY + timedelta(days=1), "MR")]
    again = poller(worklist.port, days_ahead=1).poll(now + timedelta(minutes=15))
    assert {r.request_id for r in again.requests} == {r.request_id for r in polled.requests}


def test_a_modality_filter_asks_for_that_modality_only(worklist: WorklistProcess) -> None:
    polled = poller(worklist.port, days_ahead=7, modalities=["MR"]).poll(datetime.now(UTC))
    assert [r.patient_id for r in polled.requests] == ["PAT-2"]


def test_a_worklist_that_is_down_is_a_failed_poll(tmp_path: Path) -> None:
    polled = poller(free_port()).poll(datetime.now(UTC))
    assert polled.requests == [] and "WORKLIST" in polled.problem


def test_a_poll_is_due_at_once_then_every_so_many_minutes(
        worklist: WorklistProcess) -> None:
    timed = poller(worklist.port, every_minutes=30)
    assert timed.poll_if_due(datetime.now(UTC)).requests
    assert timed.poll_if_due(datetime.now(UTC)).requests == []  # not yet due again


Factory = Callable[..., WorklistProcess]


def test_check_names_a_taken_hl7_port_a_worklist_that_answers_and_a_bad_clinic_row(
        worklist: WorklistProcess, tmp_path: Path) -> None:
    import socket

    from runner.execute.preflight_priority import priority_checks
    from runner.morph.loaded import load_profile
    from tests.profiles import profile_data, write_profile

    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen(1)
    clinic = tmp_path / "clinic.csv"
    clinic.write_text("patient_id,date\nP1,2026-12-06\nP2,someday\n", encoding="utf-8")
    from runner.dicom.peer import Peer

    data = profile_data(tmp_path, [("old1", Peer("OLD", "127.0.0.1", free_port()))],
                        Peer("NEW", "127.0.0.2", free_port()), free_port(), priority={
        "hl7": {"host": "127.0.0.1", "port": held.getsockname()[1]},
        "worklist": {"ae_title": worklist.aet, "host": "127.0.0.1", "port": worklist.port,
                     "days_ahead": 7},
        "csv": str(clinic)})
    checks: list[tuple[str, bool, str]] = []
    with held:
        priority_checks(load_profile(write_profile(tmp_path, data)).profile, SETTINGS,
                        lambda *r: checks.append(r) is None)
    hl7, wl, csv = checks
    assert not hl7[1] and "cannot listen" in hl7[2]
    assert wl[1] and wl[2].startswith("answered:")
    assert not csv[1] and f"{clinic}:3:4:" in csv[2]
