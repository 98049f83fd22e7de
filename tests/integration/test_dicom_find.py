"""C-FIND outcomes: answers collected, and failure statuses, aborts and timeouts as data."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import date

import pytest
from pydicom import Dataset

from runner.dicom.find import FindSession, c_find
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.status import StatusCategory
from runner.sim.generate import StudySpec, make_study, to_bytes
from tests.peers import HOST, OrthancProcess, PynetdicomScp, free_port

FAST = DicomSettings(acse_timeout=2.0, dimse_timeout=0.5, network_timeout=5.0,
                     connection_timeout=2.0)
Responses = Iterator[tuple[int, Dataset | None]]


def _study(uid: str) -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID = uid
    return ds


def _query() -> Dataset:
    query = Dataset()
    query.StudyInstanceUID = ""
    return query


def _pending_then(final: int) -> Callable[[Dataset], Responses]:
    def on_find(_: Dataset) -> Responses:
        yield 0xFF00, _study("1.2.3.1")
        yield 0xFF00, _study("1.2.3.2")
        yield final, None

    return on_find


def test_pending_answers_are_collected_until_success(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp],
) -> None:
    scp = pynetdicom_scp_factory(on_find=_pending_then(0x0000))
    outcome = c_find(scp.peer, "PACSMIG", FAST, "STUDY", _query())
    assert outcome.ok and outcome.status == 0x0000
    assert [ds.StudyInstanceUID for ds in outcome.identifiers] == ["1.2.3.1", "1.2.3.2"]


@pytest.mark.parametrize(
    ("final", "category"),
    [
        (0xA700, StatusCategory.OUT_OF_RESOURCES),
        (0xC001, StatusCategory.UNABLE_TO_PROCESS),
        (0xA900, StatusCategory.FAILURE),
        (0xFE00, StatusCategory.CANCEL),
    ],
)
def test_failure_status_is_an_outcome_keeping_the_answers_received(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp], final: int, category: StatusCategory
) -> None:
    scp = pynetdicom_scp_factory(on_find=_pending_then(final))
    outcome = c_find(scp.peer, "PACSMIG", FAST, "STUDY", _query())
    assert not outcome.ok
    assert (outcome.category, outcome.status) == (category, final)
    assert len(outcome.identifiers) == 2
    assert f"0x{final:04X}" in outcome.detail


def test_query_is_sent_at_the_level_asked_and_left_unchanged(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp],
) -> None:
    seen: list[str] = []

    def on_find(identifier: Dataset) -> Responses:
        seen.append(identifier.QueryRetrieveLevel)
        yield 0x0000, None

    scp = pynetdicom_scp_factory(on_find=on_find)
    query = _query()
    assert c_find(scp.peer, "PACSMIG", FAST, "SERIES", query).ok
    assert seen == ["SERIES"] and "QueryRetrieveLevel" not in query


def test_peer_that_stops_answering_is_a_timeout_outcome(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp],
) -> None:
    def on_find(_: Dataset) -> Responses:
        yield 0xFF00, _study("1.2.3.1")
        time.sleep(FAST.dimse_timeout * 3)
        yield 0x0000, None

    scp = pynetdicom_scp_factory(on_find=on_find)
    outcome = c_find(scp.peer, "PACSMIG", FAST, "STUDY", _query())
    assert outcome.category is StatusCategory.TIMEOUT and outcome.status is None
    assert len(outcome.identifiers) == 1


def test_peer_that_aborts_is_an_aborted_outcome(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp],
) -> None:
    scps: list[PynetdicomScp] = []

    def on_find(_: Dataset) -> Responses:
        yield 0xFF00, _study("1.2.3.1")
        assert scps[0]._server is not None
        for assoc in scps[0]._server.active_associations:
            assoc.abort()
        yield 0x0000, None

    scps.append(pynetdicom_scp_factory(on_find=on_find))
    outcome = c_find(scps[0].peer, "PACSMIG", FAST, "STUDY", _query())
    assert outcome.category is StatusCategory.ABORTED and outcome.status is None


def test_no_patient_data_reaches_the_logs_of_either_side(
    pynetdicom_scp_factory: Callable[..., PynetdicomScp], caplog: pytest.LogCaptureFixture
) -> None:
    def on_find(_: Dataset) -> Responses:
        answer = _study("1.2.3.9")
        answer.PatientName = "Secret^Person"
        answer.PatientID = "SECRET-ID-42"
        yield 0xFF00, answer
        yield 0x0000, None

    scp = pynetdicom_scp_factory(on_find=on_find)
    query = _query()
    query.PatientName = "Secret^Query"
    query.PatientID = ""
    with caplog.at_level(logging.DEBUG, logger="pynetdicom"):
        outcome = c_find(scp.peer, "PACSMIG", FAST, "STUDY", query)
    assert outcome.identifiers[0].PatientID == "SECRET-ID-42"
    assert "C-FIND" in caplog.text  # pynetdicom did log the exchange
    for secret in ("Secret", "SECRET-ID-42"):
        assert secret not in caplog.text


def test_closed_port_is_a_no_association_outcome() -> None:
    outcome = c_find(Peer("NOBODY", HOST, free_port()), "PACSMIG", FAST, "STUDY", _query())
    assert outcome.category is StatusCategory.NO_ASSOCIATION and outcome.identifiers == []


def test_unknown_query_level_is_misuse() -> None:
    with pytest.raises(ValueError, match="level"):
        c_find(Peer("X", HOST, 104), "PACSMIG", FAST, "FRAME", _query())


@pytest.mark.peers
def test_study_level_find_on_orthanc_returns_the_stored_study(
    orthanc_factory: Callable[..., OrthancProcess],
) -> None:
    orthanc = orthanc_factory()
    spec = StudySpec("find", "P1", "Doe^Jane", date(2022, 2, 3), "MR", 2, 3)
    for ds in make_study(spec):
        orthanc.upload(to_bytes(ds))
    query = _query()
    query.StudyDate = "20220101-20221231"
    query.NumberOfStudyRelatedInstances = ""
    outcome = c_find(orthanc.peer, "PACSMIG", FAST, "STUDY", query)
    assert outcome.ok
    assert [(ds.StudyInstanceUID, int(ds.NumberOfStudyRelatedInstances))
            for ds in outcome.identifiers] == [(spec.study_uid, 6)]


def test_a_session_asks_every_query_on_one_association(
        pynetdicom_scp_factory: Callable[..., PynetdicomScp]) -> None:
    scp = pynetdicom_scp_factory(on_find=_pending_then(0x0000))
    with FindSession(scp.peer, "PACSMIG", FAST) as session:
        outcomes = [session.ask("STUDY", _query()) for _ in range(5)]
    assert all(o.ok and len(o.identifiers) == 2 for o in outcomes)
    assert scp.finds == 5 and len(scp.associations) == 1


def test_a_session_whose_idle_association_the_peer_closed_asks_on_a_new_one(
        pynetdicom_scp_factory: Callable[..., PynetdicomScp]) -> None:
    impatient = DicomSettings(acse_timeout=2.0, dimse_timeout=2.0, network_timeout=0.3,
                              connection_timeout=2.0)
    scp = pynetdicom_scp_factory(on_find=_pending_then(0x0000), settings=impatient)
    with FindSession(scp.peer, "PACSMIG", FAST) as session:
        first = session.ask("STUDY", _query())
        time.sleep(1.0)  # the SCP lets the idle association go after 0.3 s
        second = session.ask("STUDY", _query())
    assert first.ok and second.ok and len(second.identifiers) == 2
    assert len(scp.associations) == 2
