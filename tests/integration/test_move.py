"""C-MOVE from real sources (Orthanc, dcmqrscp) into the migration listener."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from runner.dicom.listener import (
    IncomingStore,
    Listener,
    ListenerCallbacks,
    ListenerConfig,
    Received,
    Verdict,
)
from runner.dicom.move import MoveHandle, MoveProgress, c_move
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import VERIFICATION
from runner.dicom.spool import Spool
from runner.dicom.status import StatusCategory
from runner.sim.ae import _ResponsesForTheCaller, make_ae
from runner.sim.generate import StudySpec, make_study, to_bytes, write_study
from runner.sim.qrscp import QRServer
from tests.conftest import require_peer_binaries
from tests.peers import HOST, DcmqrscpProcess, OrthancProcess, free_port

pytestmark = pytest.mark.peers

LISTENER_AE = "MIGRATE"
SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=10)
STUDY = StudySpec(
    "move-study",
    "PID-7",
    "Move^Mona",
    date(2019, 5, 6),
    "CT",
    series_count=2,
    instances_per_series=5,
)
LONG_STUDY = StudySpec(
    "long-study", "PID-8", "Long^Lars", date(2018, 1, 2), "MR", instances_per_series=300
)


@dataclass
class Recorder:
    """What the listener received during one test, and which instances it refuses."""

    refuse: set[str] = field(default_factory=set)
    stored: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, header: IncomingStore) -> Verdict:
        return Verdict.REFUSE if header.sop_instance_uid in self.refuse else Verdict.STORE

    def on_stored(self, received: Received) -> None:
        with self.lock:
            self.stored.append(received)

    def stored_uids(self) -> set[str]:
        with self.lock:
            return {r.header.sop_instance_uid for r in self.stored}


@dataclass
class World:
    listener: Listener
    recorder: Recorder
    orthanc: OrthancProcess
    dcmqrscp: DcmqrscpProcess

    def source(self, name: str) -> Peer:
        return self.orthanc.peer if name == "orthanc" else self.dcmqrscp.peer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One listener, and both sources loaded with STUDY (Orthanc also with LONG_STUDY)."""
    require_peer_binaries()
    root = tmp_path_factory.mktemp("move")
    recorder = Recorder()
    callbacks = ListenerCallbacks(recorder.decide, recorder.on_stored)
    config = ListenerConfig(LISTENER_AE, frozenset({"ORTHANC", "DCMQRSCP"}), settings=SETTINGS)
    with Listener(config, Spool(root / "spool", 10**9), callbacks) as listener:
        destination = {"migrate": Peer(LISTENER_AE, HOST, listener.port)}
        orthanc = OrthancProcess(workdir=root / "orthanc", modalities=destination)
        (root / "dcmqrscp").mkdir()
        dcmqrscp = DcmqrscpProcess(workdir=root / "dcmqrscp", move_destinations=destination)
        try:
            orthanc.start()
            dcmqrscp.start()
            files = write_study(root / "files", STUDY)
            orthanc.upload_all(files)
            orthanc.upload_all(to_bytes(ds) for ds in make_study(LONG_STUDY))
            dcmqrscp.add_files(files)
            yield World(listener, recorder, orthanc, dcmqrscp)
        finally:
            orthanc.stop()
            dcmqrscp.stop()


@pytest.fixture(autouse=True)
def fresh_recorder(world: World) -> Iterator[None]:
    yield
    with world.recorder.lock:
        world.recorder.stored.clear()
        world.recorder.refuse.clear()


def wait_until_quiet(world: World, quiet: float = 0.3, timeout: float = 5.0) -> None:
    """After an abort the source may still finish the sub-operation it was sending: wait
    until no store has arrived for `quiet` seconds, so that it does not reach the next test."""
    deadline = time.monotonic() + timeout
    count, since = len(world.recorder.stored), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.02)
        if len(world.recorder.stored) != count:
            count, since = len(world.recorder.stored), time.monotonic()


def wait_for_stores(world: World, count: int, timeout: float = 5.0) -> None:
    """Sub-operation C-STOREs are answered before the final C-MOVE response; allow a moment."""
    deadline = time.monotonic() + timeout
    while len(world.recorder.stored) < count and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("source", ["orthanc", "dcmqrscp"])
def test_study_move_spools_every_instance_tagged_with_the_move_message_id(
    world: World, source: str
) -> None:
    progress: list[MoveProgress] = []

    outcome = c_move(
        world.source(source),
        LISTENER_AE,
        SETTINGS,
        LISTENER_AE,
        STUDY.study_uid,
        msg_id=4321,
        on_pending=progress.append,
    )

    assert outcome.category is StatusCategory.SUCCESS, outcome.detail
    assert outcome.status == 0x0000
    assert outcome.completed == STUDY.instance_count
    assert outcome.failed == 0 and outcome.failed_uids == ()
    assert progress and all(p.remaining is not None for p in progress)
    wait_for_stores(world, STUDY.instance_count)
    assert world.recorder.stored_uids() == set(STUDY.sop_uids)
    headers = [r.header for r in world.recorder.stored]
    assert {h.move_originator_msg_id for h in headers} == {4321}
    assert {h.move_originator_ae for h in headers} == {LISTENER_AE}
    assert {h.study_uid for h in headers} == {STUDY.study_uid}


@pytest.mark.parametrize("source", ["orthanc", "dcmqrscp"])
def test_image_level_move_retrieves_only_the_asked_instances_across_series(
    world: World, source: str
) -> None:
    asked = [
        (STUDY.series_uid(1), STUDY.sop_uid(1, 2)),
        (STUDY.series_uid(1), STUDY.sop_uid(1, 4)),
        (STUDY.series_uid(2), STUDY.sop_uid(2, 3)),
    ]

    outcome = c_move(
        world.source(source),
        LISTENER_AE,
        SETTINGS,
        LISTENER_AE,
        STUDY.study_uid,
        msg_id=77,
        sop_instances=asked,
    )

    assert outcome.category is StatusCategory.SUCCESS, outcome.detail
    assert outcome.completed == 3
    wait_for_stores(world, 3)
    time.sleep(0.1)  # anything more would arrive now
    assert world.recorder.stored_uids() == {sop for _, sop in asked}
    assert {r.header.move_originator_msg_id for r in world.recorder.stored} == {77}


def test_move_to_an_unknown_destination_is_move_destination_unknown_fast(world: World) -> None:
    outcome = c_move(
        world.dcmqrscp.peer, LISTENER_AE, SETTINGS, "NOBODY", STUDY.study_uid, msg_id=5
    )

    assert outcome.category is StatusCategory.MOVE_DESTINATION_UNKNOWN
    assert outcome.status == 0xA801
    assert "NOBODY" in outcome.detail
    assert outcome.seconds < 2
    assert world.recorder.stored == []


def test_move_from_a_closed_port_is_no_association_without_waiting() -> None:
    closed = Peer("ORTHANC", HOST, free_port())

    outcome = c_move(closed, LISTENER_AE, SETTINGS, LISTENER_AE, STUDY.study_uid, msg_id=6)

    assert outcome.category is StatusCategory.NO_ASSOCIATION
    assert outcome.status is None and outcome.completed is None
    assert outcome.seconds < 2


def test_sub_operation_failures_come_back_as_failed_uids(world: World) -> None:
    refused = STUDY.sop_uid(2, 1)
    world.recorder.refuse.add(refused)

    outcome = c_move(
        world.dcmqrscp.peer, LISTENER_AE, SETTINGS, LISTENER_AE, STUDY.study_uid, msg_id=8
    )

    assert outcome.category is StatusCategory.SUB_OPS_FAILED
    assert outcome.status == 0xB000
    assert outcome.failed == 1 and outcome.completed == STUDY.instance_count - 1
    assert outcome.failed_uids == (refused,)
    wait_for_stores(world, STUDY.instance_count - 1)
    assert world.recorder.stored_uids() == set(STUDY.sop_uids) - {refused}


def test_abort_from_a_watchdog_thread_ends_a_long_move_as_aborted(world: World) -> None:
    handle = MoveHandle()
    first_pending = threading.Event()
    watchdog = threading.Thread(target=lambda: first_pending.wait(10) and handle.abort())
    watchdog.start()

    outcome = c_move(
        world.orthanc.peer,
        LISTENER_AE,
        SETTINGS,
        LISTENER_AE,
        LONG_STUDY.study_uid,
        msg_id=9,
        on_pending=lambda _p: first_pending.set(),
        handle=handle,
    )
    watchdog.join()

    assert outcome.category is StatusCategory.ABORTED
    assert outcome.status is None
    assert outcome.completed is not None and outcome.completed < LONG_STUDY.instance_count
    assert outcome.seconds < SETTINGS.dimse_timeout / 2
    wait_until_quiet(world)
    assert len(world.recorder.stored) < LONG_STUDY.instance_count


def test_abort_before_the_association_opens_ends_the_move_at_once(world: World) -> None:
    handle = MoveHandle()
    handle.abort()

    outcome = c_move(
        world.orthanc.peer,
        LISTENER_AE,
        SETTINGS,
        LISTENER_AE,
        LONG_STUDY.study_uid,
        msg_id=10,
        handle=handle,
    )

    assert outcome.category is StatusCategory.ABORTED
    time.sleep(0.2)
    assert world.recorder.stored == []


def test_cancel_stops_a_long_move_with_the_cancel_status(world: World) -> None:
    handle = MoveHandle()
    cancelled: list[bool] = []
    asked = threading.Event()

    def cancel_once(_progress: MoveProgress) -> None:
        if not asked.is_set():
            asked.set()
            threading.Thread(target=lambda: cancelled.append(handle.cancel())).start()

    outcome = c_move(
        world.orthanc.peer,
        LISTENER_AE,
        SETTINGS,
        LISTENER_AE,
        LONG_STUDY.study_uid,
        msg_id=11,
        on_pending=cancel_once,
        handle=handle,
    )

    assert cancelled == [True]
    assert outcome.category is StatusCategory.CANCEL
    assert outcome.status == 0xFE00
    assert outcome.remaining is not None and outcome.remaining > 0
    assert not handle.cancel()  # nothing running any more


def test_move_rejects_a_message_id_outside_the_dimse_range() -> None:
    peer = Peer("ORTHANC", HOST, 104)
    with pytest.raises(ValueError, match="msg_id"):
        c_move(peer, LISTENER_AE, SETTINGS, LISTENER_AE, STUDY.study_uid, msg_id=0)


def test_a_pynetdicom_source_loses_no_sub_operation_to_the_fast_listener(
    tmp_path: Path,
) -> None:
    """The simulated PACS sends its C-STORE sub-operations with pynetdicom. The lean
    listener answers so fast that pynetdicom's reactor thread could take the response before
    `send_c_store` waited for it (then the store timed out and the move ended short: seen
    twice in CI under load, "Received unexpected C-STORE service message"); every
    association an AE of runner.sim.ae requests is protected against that (the test
    below checks the protection itself, which this race-dependent one cannot always)."""
    fast = DicomSettings(dimse_timeout=5.0)
    recorder = Recorder()
    config = ListenerConfig(LISTENER_AE, frozenset({"SIMSRC"}), settings=fast)
    callbacks = ListenerCallbacks(recorder.decide, recorder.on_stored)
    with Listener(config, Spool(tmp_path / "spool", 10**9), callbacks) as listener:
        server = QRServer("SIMSRC", [LONG_STUDY], {LISTENER_AE: (HOST, listener.port)},
                          settings=fast).start()
        try:
            outcomes = [c_move(Peer("SIMSRC", HOST, server.port), LISTENER_AE, fast,
                               LISTENER_AE, LONG_STUDY.study_uid, msg_id=20 + attempt)
                        for attempt in range(2)]
        finally:
            server.stop()
    for outcome in outcomes:
        assert outcome.category is StatusCategory.SUCCESS, outcome.detail
        assert (outcome.completed, outcome.failed) == (LONG_STUDY.instance_count, 0)


def test_every_association_an_ae_of_ours_requests_keeps_its_responses_for_the_caller(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    config = ListenerConfig(LISTENER_AE, frozenset({"SIMSRC"}), settings=SETTINGS)
    callbacks = ListenerCallbacks(recorder.decide, recorder.on_stored)
    with Listener(config, Spool(tmp_path / "spool", 10**9), callbacks) as listener:
        ae = make_ae("SIMSRC", SETTINGS)
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate(HOST, listener.port, ae_title=LISTENER_AE)  # as pynetdicom's
        try:                                                            # C-MOVE SCP does
            assert assoc.is_established
            assert isinstance(assoc.dimse.msg_queue, _ResponsesForTheCaller)
        finally:
            assoc.release()
