"""Verification at the destination (C-FIND presence and counts) and storage commitment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

import pytest
from pydicom import Dataset
from pynetdicom import evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from runner.dicom.commitment import request_commitment
from runner.dicom.commitment_report import (
    STORAGE_COMMITMENT_PUSH,
    CommitmentReport,
    ReportError,
    parse_report,
)
from runner.dicom.listener import Listener, ListenerCallbacks, ListenerConfig, Verdict
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.spool import Spool
from runner.dicom.status import StatusCategory
from runner.dicom.store import StoreClient
from runner.dicom.verify import instances_present, study_instance_count
from runner.sim.ae import make_ae
from runner.sim.generate import StudySpec, make_study, to_bytes
from tests.conftest import require_peer_binaries
from tests.peers import HOST, OrthancProcess, free_port

LISTENER_AE = "MIGRATE"
DEST_AE = "DEST"
SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=10)
CT = "1.2.840.10008.5.1.4.1.1.2"
ACCESSION, INSTANCE_NUMBER, IMAGE_TYPE = 0x00080050, 0x00200013, 0x00080008
STUDY_A = StudySpec(
    "verify-a",
    "PID-1",
    "Verify^Vera",
    date(2017, 7, 7),
    "CT",
    series_count=2,
    instances_per_series=3,
)
STUDY_B = StudySpec(
    "verify-b", "PID-2", "Other^Otto", date(2016, 6, 6), "MR", instances_per_series=4
)
UNKNOWN_UID = "1.2.826.0.1.3680043.8.498.999999"


@dataclass
class Reports:
    """Storage commitment reports the listener received."""

    received: list[CommitmentReport] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def deliver(self, report: CommitmentReport) -> None:
        with self.arrived:
            self.received.append(report)
            self.arrived.notify_all()

    def wait_for(self, transaction_uid: str, timeout: float = 10.0) -> CommitmentReport | None:
        with self.arrived:
            self.arrived.wait_for(
                lambda: any(r.transaction_uid == transaction_uid for r in self.received), timeout
            )
            return next((r for r in self.received if r.transaction_uid == transaction_uid), None)


@dataclass
class Destination:
    orthanc: OrthancProcess
    reports: Reports


@pytest.fixture(scope="module")
def destination(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Destination]:
    """Orthanc holding STUDY_A and STUDY_B, knowing the listener (to send reports to)."""
    require_peer_binaries()
    root = tmp_path_factory.mktemp("verify")
    reports = Reports()
    callbacks = ListenerCallbacks(
        lambda _h: Verdict.REFUSE, lambda _r: None, on_commitment=reports.deliver
    )
    config = ListenerConfig(LISTENER_AE, frozenset({DEST_AE}), settings=SETTINGS)
    with Listener(config, Spool(root / "spool", 10**6), callbacks) as listener:
        modalities = {"migrate": Peer(LISTENER_AE, HOST, listener.port)}
        orthanc = OrthancProcess(workdir=root / "orthanc", aet=DEST_AE, modalities=modalities)
        try:
            orthanc.start()
            for spec in (STUDY_A, STUDY_B):
                orthanc.upload_all(to_bytes(ds) for ds in make_study(spec))
            yield Destination(orthanc, reports)
        finally:
            orthanc.kill()  # its data is the tests' to throw away: a graceful stop takes ~3 s


@pytest.mark.peers
def test_instances_present_lists_exactly_the_instances_of_the_study(
    destination: Destination,
) -> None:
    found = instances_present(destination.orthanc.peer, LISTENER_AE, SETTINGS, STUDY_A.study_uid)

    assert found.category is StatusCategory.SUCCESS, found.detail
    assert found.sop_uids == frozenset(STUDY_A.sop_uids)
    assert found.values == {uid: {} for uid in STUDY_A.sop_uids}


@pytest.mark.peers
def test_instances_present_returns_the_values_of_the_return_keys(
    destination: Destination,
) -> None:
    found = instances_present(
        destination.orthanc.peer,
        LISTENER_AE,
        SETTINGS,
        STUDY_B.study_uid,
        return_keys=[ACCESSION, INSTANCE_NUMBER, IMAGE_TYPE],
    )

    assert found.ok
    by_number = {values[INSTANCE_NUMBER]: values for values in found.values.values()}
    assert sorted(by_number) == ["1", "2", "3", "4"]
    assert {v[ACCESSION] for v in found.values.values()} == {STUDY_B.accession_number}
    assert {v[IMAGE_TYPE] for v in found.values.values()} == {"ORIGINAL\\PRIMARY\\AXIAL"}


@pytest.mark.peers
def test_morphed_values_are_seen_at_the_destination(destination: Destination) -> None:
    spec = StudySpec("verify-morph", "PID-3", "Morph^Mia", date(2015, 5, 5), "CR")
    [ds] = make_study(spec)
    ds.AccessionNumber = "NEW-ACC-42"
    with StoreClient(destination.orthanc.peer, LISTENER_AE, SETTINGS) as client:
        assert client.store_dataset(ds).ok

    found = instances_present(
        destination.orthanc.peer, LISTENER_AE, SETTINGS, spec.study_uid, return_keys=[ACCESSION]
    )

    assert found.values == {ds.SOPInstanceUID: {ACCESSION: "NEW-ACC-42"}}


@pytest.mark.peers
def test_unknown_study_has_no_instances_and_a_count_of_zero(destination: Destination) -> None:
    peer = destination.orthanc.peer

    found = instances_present(peer, LISTENER_AE, SETTINGS, UNKNOWN_UID)
    counted = study_instance_count(peer, LISTENER_AE, SETTINGS, UNKNOWN_UID)

    assert found.ok and found.sop_uids == frozenset()
    assert counted.ok and counted.count == 0


@pytest.mark.peers
def test_study_instance_count_is_the_number_of_instances_held(destination: Destination) -> None:
    peer = destination.orthanc.peer

    counts = [
        study_instance_count(peer, LISTENER_AE, SETTINGS, spec.study_uid).count
        for spec in (STUDY_A, STUDY_B)
    ]

    assert counts == [STUDY_A.instance_count, STUDY_B.instance_count]


@pytest.mark.peers
def test_verification_against_a_closed_port_is_no_association_as_data() -> None:
    closed = Peer(DEST_AE, HOST, free_port())

    found = instances_present(closed, LISTENER_AE, SETTINGS, STUDY_A.study_uid)
    counted = study_instance_count(closed, LISTENER_AE, SETTINGS, STUDY_A.study_uid)
    commitment = request_commitment(closed, LISTENER_AE, SETTINGS, [(CT, STUDY_A.sop_uids[0])])

    assert found.category is StatusCategory.NO_ASSOCIATION and not found.ok
    assert counted.category is StatusCategory.NO_ASSOCIATION and counted.count is None
    assert commitment.category is StatusCategory.NO_ASSOCIATION and commitment.status is None


@pytest.mark.peers
def test_storage_commitment_from_orthanc_reports_stored_instances_committed(
    destination: Destination,
) -> None:
    refs = [(CT, uid) for uid in STUDY_A.sop_uids] + [(CT, UNKNOWN_UID)]

    request = request_commitment(destination.orthanc.peer, LISTENER_AE, SETTINGS, refs)

    assert request.ok and request.status == 0x0000, request.detail
    report = destination.reports.wait_for(request.transaction_uid)
    assert report is not None, "no N-EVENT-REPORT reached the listener"
    assert report.committed == frozenset(STUDY_A.sop_uids)
    assert report.failed == {UNKNOWN_UID: 0x0112}  # no such object instance


@dataclass
class StrictFindScp:
    """A hierarchical C-FIND SCP: refuses IMAGE-level queries without a SeriesInstanceUID."""

    instances: list[Dataset]
    queries: list[str] = field(default_factory=list)

    def handle(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        query = event.identifier
        level = str(query.QueryRetrieveLevel)
        self.queries.append(level)
        if level == "IMAGE" and not query.get("SeriesInstanceUID"):
            yield 0xA900, None  # identifier does not match SOP class
            return
        for ds in self.matches(query, level):
            yield 0xFF00, ds
        yield 0x0000, None

    def matches(self, query: Dataset, level: str) -> list[Dataset]:
        chosen = [
            ds
            for ds in self.instances
            if ds.StudyInstanceUID == query.StudyInstanceUID
            and query.get("SeriesInstanceUID") in ("", None, ds.SeriesInstanceUID)
        ]
        if level == "SERIES":
            unique = {ds.SeriesInstanceUID: ds for ds in chosen}
            chosen = list(unique.values())
        return [self.answer(ds, query, level) for ds in chosen]

    @staticmethod
    def answer(ds: Dataset, query: Dataset, level: str) -> Dataset:
        answer = Dataset()
        answer.QueryRetrieveLevel = level
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if keyword in query:
                answer[keyword] = ds[keyword]
        return answer


@pytest.fixture
def strict_scp() -> Iterator[Callable[[list[Dataset]], tuple[Peer, StrictFindScp]]]:
    servers = []

    def start(instances: list[Dataset]) -> tuple[Peer, StrictFindScp]:
        scp = StrictFindScp(instances)
        ae = make_ae("STRICT", SETTINGS)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        server = ae.start_server(
            (HOST, 0), block=False, evt_handlers=[(evt.EVT_C_FIND, scp.handle)]
        )
        servers.append(server)
        return Peer("STRICT", HOST, server.server_address[1]), scp

    yield start
    for server in servers:
        server.shutdown()


def test_a_hierarchical_pacs_is_asked_series_by_series(
    strict_scp: Callable[[list[Dataset]], tuple[Peer, StrictFindScp]],
) -> None:
    peer, scp = strict_scp(make_study(STUDY_A) + make_study(STUDY_B))

    found = instances_present(peer, LISTENER_AE, SETTINGS, STUDY_A.study_uid)

    assert found.ok, found.detail
    assert found.sop_uids == frozenset(STUDY_A.sop_uids)
    assert scp.queries == ["IMAGE", "SERIES", "IMAGE", "IMAGE"]


def test_report_sent_on_the_requesting_association_comes_back_with_the_request() -> None:
    """An SCP that answers the N-ACTION, then sends the N-EVENT-REPORT on the same association
    (pynetdicom: the oracle the lean requestor is checked against, both ways)."""
    answered: list[int] = []
    asked: list[tuple[int, str, str]] = []

    def on_action(event: evt.Event) -> tuple[int, None]:
        info = event.action_information
        assoc = event.assoc
        asked.append((event.action_type, str(event.request.RequestedSOPClassUID),
                      str(event.request.RequestedSOPInstanceUID)))

        def report() -> None:
            time.sleep(0.05)
            result = Dataset()
            result.TransactionUID = info.TransactionUID
            result.ReferencedSOPSequence = info.ReferencedSOPSequence[:1]
            failed = Dataset()
            failed.ReferencedSOPClassUID = CT
            failed.ReferencedSOPInstanceUID = info.ReferencedSOPSequence[1].ReferencedSOPInstanceUID
            failed.FailureReason = 0x0110
            result.FailedSOPSequence = [failed]
            status, _reply = assoc.send_n_event_report(result, 2, STORAGE_COMMITMENT_PUSH,
                                                       "1.2.840.10008.1.20.1.1")
            answered.append(int(status.Status) if "Status" in status else -1)

        threading.Thread(target=report).start()
        return 0x0000, None

    ae = make_ae("COMMITTER", SETTINGS)
    ae.add_supported_context(STORAGE_COMMITMENT_PUSH)
    server = ae.start_server((HOST, 0), block=False, evt_handlers=[(evt.EVT_N_ACTION, on_action)])
    try:
        peer = Peer("COMMITTER", HOST, server.server_address[1])
        refs = [(CT, "1.2.3.1"), (CT, "1.2.3.2")]
        request = request_commitment(peer, LISTENER_AE, SETTINGS, refs, wait_for_report=5)
    finally:
        server.shutdown()

    assert request.ok, request.detail
    assert request.report == CommitmentReport(
        request.transaction_uid, frozenset({"1.2.3.1"}), {"1.2.3.2": 0x0110}
    )
    assert request.seconds < 5
    assert asked == [(1, STORAGE_COMMITMENT_PUSH, "1.2.840.10008.1.20.1.1")]
    assert answered == [0x0000]  # the report was answered, and as a success


def test_without_a_report_on_the_association_the_request_waits_as_long_as_asked() -> None:
    """An SCP that accepts the request and reports later, elsewhere (as Orthanc does)."""
    ae = make_ae("COMMITTER", SETTINGS)
    ae.add_supported_context(STORAGE_COMMITMENT_PUSH)
    server = ae.start_server((HOST, 0), block=False,
                             evt_handlers=[(evt.EVT_N_ACTION, lambda _event: (0x0000, None))])
    try:
        peer = Peer("COMMITTER", HOST, server.server_address[1])
        request = request_commitment(peer, LISTENER_AE, SETTINGS, [(CT, "1.2.3.1")],
                                     wait_for_report=0.5)
    finally:
        server.shutdown()

    assert request.ok and request.status == 0x0000, request.detail
    assert request.report is None
    assert 0.5 <= request.seconds < 3


def _report_info(transaction: str, committed: list[str], failed: dict[str, int]) -> Dataset:
    info = Dataset()
    info.TransactionUID = transaction
    items = []
    for uid in committed:
        item = Dataset()
        item.ReferencedSOPClassUID = CT
        item.ReferencedSOPInstanceUID = uid
        items.append(item)
    info.ReferencedSOPSequence = items
    failures = []
    for uid, reason in failed.items():
        item = Dataset()
        item.ReferencedSOPClassUID = CT
        item.ReferencedSOPInstanceUID = uid
        item.FailureReason = reason
        failures.append(item)
    if failures:
        info.FailedSOPSequence = failures
    return info


def test_parse_report_reads_committed_and_failed_instances() -> None:
    all_ok = parse_report(1, _report_info("1.9", ["1.1", "1.2"], {}))
    some_failed = parse_report(2, _report_info("1.9", ["1.1"], {"1.2": 0x0112, "1.3": 0xA700}))

    assert all_ok == CommitmentReport("1.9", frozenset({"1.1", "1.2"}), {})
    assert some_failed == CommitmentReport(
        "1.9", frozenset({"1.1"}), {"1.2": 0x0112, "1.3": 0xA700}
    )


@pytest.mark.parametrize(
    ("event_type", "info"),
    [
        (3, _report_info("1.9", ["1.1"], {})),
        (1, None),
        (1, Dataset()),
    ],
    ids=["other-event", "no-information", "no-transaction"],
)
def test_parse_report_refuses_what_is_not_a_commitment_result(
    event_type: int, info: Dataset | None
) -> None:
    with pytest.raises(ReportError):
        parse_report(event_type, info)
