"""The forwarder's worker processes against a real C-STORE SCP (pynetdicom, in this process)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from pydicom import Dataset
from pynetdicom import StoragePresentationContexts, evt
from pynetdicom.transport import ThreadedAssociationServer

from runner.dicom.ae import make_ae
from runner.dicom.peer import DicomSettings, Peer
from runner.execute.forward_pool import ProcessSender
from runner.execute.forwarder import (
    Backoff,
    Forwarder,
    ForwardItem,
    ForwardResult,
    Job,
    Sender,
)
from runner.morph import RuleSet, compile_rules
from runner.profile.models import MorphRule
from runner.sim.generate import StudySpec, make_study, to_bytes

CALLING_AE = "PACSMIG"
SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=10)
NO_RULES = compile_rules([])
INSTITUTION = "Forwarded Hospital"
INSTITUTION_NAME, MODALITY = 0x00080080, 0x00080060


@dataclass
class StoreScp:
    """A C-STORE SCP recording what it stores; `hold` makes each store wait for `release`."""

    stored: dict[str, Dataset] = field(default_factory=dict)
    hold: bool = False
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadedAssociationServer | None = None

    @property
    def peer(self) -> Peer:
        assert self.server is not None
        return Peer("DEST", "127.0.0.1", self.server.server_address[1])

    def start(self) -> StoreScp:
        ae = make_ae("DEST", SETTINGS)
        for context in StoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax)
        self.server = ae.start_server(("127.0.0.1", 0), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()

    def _store(self, event: evt.Event) -> int:
        if self.hold:
            self.arrived.set()
            self.release.wait(timeout=30)
        ds = event.dataset
        self.stored[str(ds.SOPInstanceUID)] = ds
        return 0x0000


@pytest.fixture
def scp() -> Iterator[StoreScp]:
    server = StoreScp().start()
    yield server
    server.release.set()
    server.stop()


def spooled(tmp_path: Path, count: int) -> list[ForwardItem]:
    spec = StudySpec("forward-pool", "P1", "Doe^Jane", date(2020, 1, 2), "CT",
                     instances_per_series=count)
    items = []
    for number, ds in enumerate(make_study(spec)):
        path = tmp_path / f"{number:04d}.dcm"
        path.write_bytes(to_bytes(ds))
        items.append(ForwardItem(str(ds.SOPInstanceUID), str(ds.StudyInstanceUID),
                                 str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID),
                                 path, path.name))
    return items


class Results:
    """Collects the forwarder's results; `wait_final(n)` until n instances are settled."""

    def __init__(self) -> None:
        self.all: list[ForwardResult] = []
        self.cond = threading.Condition()

    def __call__(self, result: ForwardResult) -> None:
        with self.cond:
            self.all.append(result)
            self.cond.notify_all()

    def final(self) -> list[ForwardResult]:
        with self.cond:
            return [r for r in self.all if r.final]

    def wait_final(self, count: int) -> list[ForwardResult]:
        with self.cond:
            self.cond.wait_for(lambda: sum(r.final for r in self.all) >= count, timeout=60)
        return self.final()


def forwarder(scp: StoreScp, rules: RuleSet, results: Results,
              senders: list[Sender] | None = None, value_tags: tuple[int, ...] = ()) -> Forwarder:
    class Recording(Forwarder):
        def make_sender(self) -> Sender:
            sender = super().make_sender()
            if senders is not None:
                senders.append(sender)
            return sender

    return Recording(scp.peer, CALLING_AE, SETTINGS, rules, associations=2, attempts=3,
                     backoff=Backoff(0.01, 0.05), on_result=results, value_tags=value_tags)


def test_worker_processes_forward_every_instance_and_report_each_result(
        tmp_path: Path, scp: StoreScp) -> None:
    items = spooled(tmp_path, 12)
    results = Results()
    pool = forwarder(scp, NO_RULES, results).start()
    for item in items:
        pool.submit(item)
    final = results.wait_final(len(items))
    pool.close()
    assert sorted(r.item.sop_instance_uid for r in final) == sorted(scp.stored)
    assert len(scp.stored) == len(items)
    assert all(r.ok and r.item.attempt == 1 for r in final)
    assert pool.idle()


def test_rules_are_applied_in_the_worker_process_which_reports_the_values_made(
        tmp_path: Path, scp: StoreScp) -> None:
    rules = compile_rules([MorphRule.model_validate({"set": {"InstitutionName": INSTITUTION}})])
    items = spooled(tmp_path, 4)
    results = Results()
    pool = forwarder(scp, rules, results, value_tags=(INSTITUTION_NAME, MODALITY)).start()
    for item in items:
        pool.submit(item)
    final = results.wait_final(len(items))
    pool.close()
    assert all(r.ok for r in final)
    assert {str(ds.InstitutionName) for ds in scp.stored.values()} == {INSTITUTION}
    assert [r.values for r in final] == [{INSTITUTION_NAME: INSTITUTION, MODALITY: "CT"}] * 4


def test_a_killed_worker_is_replaced_and_its_instance_tried_again(
        tmp_path: Path, scp: StoreScp) -> None:
    item = spooled(tmp_path, 1)[0]
    sender = ProcessSender(scp.peer, CALLING_AE, SETTINGS, Job(NO_RULES))
    scp.hold = True
    killer = threading.Thread(target=_kill_when_store_arrives, args=(scp, sender))
    killer.start()
    lost = sender.send(item)
    killer.join()
    assert not lost.ok and lost.retry
    assert "worker process died" in lost.detail
    scp.hold = False
    scp.release.set()
    again = sender.send(item)
    sender.close()
    assert again.ok, again.detail
    assert sender.started == 2
    assert item.sop_instance_uid in scp.stored


def test_forwarder_survives_a_worker_crash_and_settles_every_instance(
        tmp_path: Path, scp: StoreScp) -> None:
    items = spooled(tmp_path, 6)
    results = Results()
    senders: list[Sender] = []
    scp.hold = True
    pool = forwarder(scp, NO_RULES, results, senders).start()
    for item in items:
        pool.submit(item)
    assert scp.arrived.wait(timeout=30)
    crashed = next(s for s in senders if isinstance(s, ProcessSender) and _busy(s))
    assert crashed.process is not None and crashed.process.pid is not None
    os.kill(crashed.process.pid, signal.SIGKILL)
    scp.hold = False
    scp.release.set()
    final = results.wait_final(len(items))
    pool.close()
    assert sorted(r.item.sop_instance_uid for r in final) == sorted(i.sop_instance_uid
                                                                   for i in items)
    assert all(r.ok for r in final), [r.reason for r in final if not r.ok]
    retried = [r for r in results.all if not r.final]
    assert retried and all("worker process died" in r.reason for r in retried)
    assert set(scp.stored) == {i.sop_instance_uid for i in items}


def _busy(sender: ProcessSender) -> bool:
    return sender.process is not None and sender.process.is_alive()


def _kill_when_store_arrives(scp: StoreScp, sender: ProcessSender) -> None:
    assert scp.arrived.wait(timeout=30)
    assert sender.process is not None and sender.process.pid is not None
    os.kill(sender.process.pid, signal.SIGKILL)
