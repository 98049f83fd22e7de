"""The forwarder's worker processes against a real C-STORE SCP (pynetdicom, in this process);
workers preforked from the runner (Preforked), each scenario in a fresh interpreter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pynetdicom import StoragePresentationContexts, evt
from pynetdicom.transport import ThreadedAssociationServer

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.store import StoreClient
from runner.execute.delayqueue import Backoff
from runner.execute.sending.dimse import DimseSenders
from runner.execute.sending.forwarder import Forwarder
from runner.execute.sending.pool import ProcessSender
from runner.execute.sending.prepare import Job
from runner.execute.sending.seam import ForwardItem, ForwardResult, Sender
from runner.morph import RuleSet, compile_rules
from runner.profile.morphing import MorphRule
from runner.sim.ae import make_ae
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
    class Recording(DimseSenders):
        def new(self) -> Sender:
            sender = super().new()
            if senders is not None:
                senders.append(sender)
            return sender

    made = Recording(scp.peer, CALLING_AE, SETTINGS, Job(rules, value_tags))
    return Forwarder(made, associations=2, attempts=3, backoff=Backoff(0.01, 0.05),
                     on_result=results, stop_within=max(SETTINGS.dimse_timeout, 5.0))


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


def test_a_worker_killed_holding_two_instances_fails_both_in_order_then_is_replaced(
        tmp_path: Path, scp: StoreScp) -> None:
    first, second, third = spooled(tmp_path, 3)
    sender = ProcessSender(scp.peer, CALLING_AE, SETTINGS, Job(NO_RULES))
    scp.hold = True
    sender.submit(first)
    sender.submit(second)  # handed over while the destination holds the first
    assert sender.waiting == 2
    _kill_when_store_arrives(scp, sender)

    lost = [sender.collect(), sender.collect()]

    assert [(a.ok, a.retry) for a in lost] == [(False, True)] * 2
    assert all("worker process died" in a.detail for a in lost)
    scp.hold = False
    scp.release.set()
    sender.submit(third)
    answer = sender.collect()
    sender.close()
    assert answer.ok, answer.detail
    assert sender.started == 2
    assert third.sop_instance_uid in scp.stored


def test_while_waiting_runs_after_the_request_went_and_before_its_answer_is_read(
        tmp_path: Path, scp: StoreScp) -> None:
    items = spooled(tmp_path, 2)
    calls: list[bool] = []

    def use_the_wait() -> None:  # the SCP holds the store until released: proof of order
        calls.append(scp.arrived.wait(timeout=30))
        scp.release.set()

    client = StoreClient(scp.peer, CALLING_AE, SETTINGS, while_waiting=use_the_wait)
    scp.hold = True
    outcomes = [client.store_file(item.path, item.sop_class_uid, item.transfer_syntax)
                for item in items]
    client.close()

    assert all(outcome.ok for outcome in outcomes), [o.detail for o in outcomes]
    assert calls == [True, True]
    assert set(scp.stored) == {item.sop_instance_uid for item in items}


def test_a_pipelined_worker_answers_in_submission_order(tmp_path: Path,
                                                         scp: StoreScp) -> None:
    items = spooled(tmp_path, 4)
    rules = compile_rules([MorphRule.model_validate({"set": {"InstitutionName": INSTITUTION}})])
    sender = ProcessSender(scp.peer, CALLING_AE, SETTINGS, Job(rules))
    answers = []
    sender.submit(items[0])
    for item in items[1:]:
        sender.submit(item)
        answers.append(sender.collect())
    answers.append(sender.collect())
    sender.close()

    assert all(a.ok for a in answers), [a.detail for a in answers]
    assert list(scp.stored) == [item.sop_instance_uid for item in items]
    assert {str(ds.InstitutionName) for ds in scp.stored.values()} == {INSTITUTION}


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


# -- workers forked from the runner itself (Preforked) -------------------------------------------
# Preforked.fork forks only while its process runs a single thread, and pytest may run threads
# (this file's SCP does): each scenario runs in a fresh interpreter, a script written to
# tmp_path that prints what it saw as one JSON line.

ROOT = Path(__file__).resolve().parents[2]
PREFORK_SCRIPT = '''
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.store import StoreClient
from runner.execute.sending.pool import Preforked, ProcessSender
from runner.execute.sending.prepare import Job
from runner.execute.sending.seam import ForwardItem
from runner.morph import compile_rules
from runner.profile.morphing import MorphRule


def report(**facts):
    print(json.dumps(facts), flush=True)


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rpartition(")")[2].split()[1])


def fork(count):
    """(threads running when forking, the Preforked, emptied of the workers it forked: their
    (process, our connection)s)."""
    threads = threading.active_count()
    preforked = Preforked.fork(count, peer, "PACSMIG", settings, job)
    workers = []
    while (worker := preforked.take()) is not None:
        workers.append(worker)
    return threads, preforked, workers


def stop(workers):
    """Ask each worker to finish (None); their exit codes."""
    codes = []
    for process, conn in workers:
        conn.send(None)
        process.join(5)
        codes.append(process.exitcode)
        conn.close()
    return codes


def held_pipe_ends(workers):
    """For each worker, the inodes of our pipe ends (any worker's) it holds open."""
    ours = {os.fstat(conn.fileno()).st_ino for _, conn in workers}
    held = []
    for process, _ in workers:
        links = set()
        for fd in os.listdir(f"/proc/{process.pid}/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                links.add(os.readlink(f"/proc/{process.pid}/fd/{fd}"))
        held.append(sorted(inode for inode in ours if f"socket:[{inode}]" in links))
    return held


def threads():
    release = threading.Event()
    extra = [threading.Thread(target=release.wait) for _ in range(args["extra_threads"])]
    for thread in extra:
        thread.start()
    running, preforked, workers = fork(3)
    facts = dict(pid=os.getpid(), threads=running, pids=[p.pid for p, _ in workers],
                 alive=[p.is_alive() for p, _ in workers],
                 parents=[parent_of(p.pid) for p, _ in workers])
    facts["exit_codes"] = stop(workers)
    if not workers:  # nothing forked: a sender starts its worker from the forkserver
        sender = ProcessSender(peer, "PACSMIG", settings, job, preforked)
        sender.prepare()
        process = sender.process
        facts.update(sender_pid=process.pid, sender_parent=parent_of(process.pid),
                     started=sender.started)
        sender.close()
        facts["sender_exit_code"] = process.exitcode
    release.set()
    report(**facts)


def killed():
    running, _, workers = fork(3)
    deadline = time.monotonic() + 5
    while any(held_pipe_ends(workers)) and time.monotonic() < deadline:
        time.sleep(0.02)  # each worker closes them first thing
    report(pid=os.getpid(), threads=running, pids=[p.pid for p, _ in workers],
           held=held_pipe_ends(workers))
    time.sleep(60)  # until killed; `workers` keeps our pipe ends open till then
    report(workers=len(workers))


def close_one():
    running, _, workers = fork(3)
    workers.reverse()  # take() hands out the youngest first: the eldest, with most heirs, first
    steps = []
    for index, (process, conn) in enumerate(workers):
        conn.close()
        process.join(5)
        steps.append(dict(closed=index, exit_code=process.exitcode,
                          alive=[p.is_alive() for p, _ in workers]))
    report(threads=running, steps=steps)


def adopt():
    running, _, workers = fork(2)
    forked = [p.pid for p, _ in workers]
    preforked = Preforked(list(workers))  # take() empties the list it is given
    sender = ProcessSender(peer, "PACSMIG", settings, job, preforked)
    spec = args["item"]
    item = ForwardItem(**{**spec, "path": Path(spec["path"])})
    attempt = sender.send(item)
    process = sender.process
    facts = dict(pid=os.getpid(), threads=running, forked=forked, adopted=process.pid,
                 adopted_parent=parent_of(process.pid), started=sender.started,
                 ok=attempt.ok, status=attempt.status, detail=attempt.detail,
                 values={str(tag): value for tag, value in (attempt.values or {}).items()})
    sender.close()
    preforked.close()
    facts["exit_codes"] = [p.exitcode for p, _ in workers]
    report(**facts)


if __name__ == "__main__":  # not when the forkserver imports this file as __mp_main__
    args = json.loads(sys.argv[1])
    settings = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=10)
    peer = Peer("DEST", "127.0.0.1", args.get("port", 104))
    rules = [MorphRule.model_validate(rule) for rule in args.get("rules", [])]
    job = Job(compile_rules(rules), tuple(args.get("value_tags", ())))
    scenarios = {"threads": threads, "killed": killed, "close_one": close_one, "adopt": adopt}
    scenarios[args["scenario"]]()
'''


def _prefork_command(tmp_path: Path, scenario: str, **args: Any) -> list[str]:
    script = tmp_path / "prefork_scenario.py"
    script.write_text(PREFORK_SCRIPT)
    return [sys.executable, str(script), json.dumps({"scenario": scenario, **args})]


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def run_prefork(tmp_path: Path, scenario: str, **args: Any) -> dict[str, Any]:
    """Run a scenario of PREFORK_SCRIPT in a fresh interpreter; what it reported.

    Its output goes to files, not pipes: a worker outliving it must not hold up the read."""
    out, err = tmp_path / f"{scenario}.out", tmp_path / f"{scenario}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run(_prefork_command(tmp_path, scenario, **args), cwd=ROOT,
                              env=_environment(), stdout=stdout, stderr=stderr, timeout=60,
                              check=False)
    assert done.returncode == 0, err.read_text()
    facts: dict[str, Any] = json.loads(out.read_text().splitlines()[-1])
    return facts


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[19] if stat is not None else None


def _running(pid: int, start_time: str | None) -> bool:
    """Whether the process `pid` that started at `start_time` still runs (not a zombie, which
    os.kill(pid, 0) cannot tell apart: the workers' new parent may never reap them)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[19] == start_time


def test_prefork_in_a_single_threaded_process_gives_live_workers_forked_from_it(
        tmp_path: Path) -> None:
    facts = run_prefork(tmp_path, "threads", extra_threads=0)
    assert facts["threads"] == 1
    assert len(facts["pids"]) == len(set(facts["pids"])) == 3
    assert facts["pid"] not in facts["pids"]
    assert facts["alive"] == [True] * 3
    assert facts["parents"] == [facts["pid"]] * 3  # forked straight from it
    assert facts["exit_codes"] == [0] * 3  # each served until told to stop


def test_prefork_with_a_second_thread_running_gives_no_workers_and_the_forkserver_is_used(
        tmp_path: Path) -> None:
    facts = run_prefork(tmp_path, "threads", extra_threads=1)
    assert facts["threads"] == 2
    assert facts["pids"] == []
    assert facts["started"] == 1
    assert facts["sender_parent"] != facts["pid"]  # the forkserver's child, not ours
    assert facts["sender_exit_code"] == 0


def test_preforked_workers_exit_when_the_runner_is_killed(tmp_path: Path) -> None:
    out, err = tmp_path / "killed.out", tmp_path / "killed.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        runner = subprocess.Popen(_prefork_command(tmp_path, "killed"), cwd=ROOT,
                                  env=_environment(), stdout=stdout, stderr=stderr)
    workers: dict[int, str | None] = {}
    try:
        deadline = time.monotonic() + 20
        while not out.read_text().endswith("\n"):
            assert runner.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "the script reported nothing"
            time.sleep(0.02)
        facts = json.loads(out.read_text())
        workers = {pid: _start_time(pid) for pid in facts["pids"]}
        assert facts["threads"] == 1 and len(workers) == 3
        assert facts["held"] == [[]] * 3  # no worker holds the runner's end of any pipe
        assert all(_running(pid, start) for pid, start in workers.items())
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(5)
        deadline = time.monotonic() + 5
        while any(_running(pid, start) for pid, start in workers.items()):
            assert time.monotonic() < deadline, "preforked workers outlived their runner"
            time.sleep(0.02)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(5)
        for pid, start in workers.items():
            if _running(pid, start):
                os.kill(pid, signal.SIGKILL)


def test_closing_our_end_of_one_preforked_workers_pipe_ends_it_and_only_it(
        tmp_path: Path) -> None:
    facts = run_prefork(tmp_path, "close_one")
    assert facts["threads"] == 1
    assert facts["steps"] == [
        {"closed": 0, "exit_code": 0, "alive": [False, True, True]},
        {"closed": 1, "exit_code": 0, "alive": [False, False, True]},
        {"closed": 2, "exit_code": 0, "alive": [False, False, False]},
    ]


def test_a_process_sender_adopts_a_preforked_worker_which_forwards_to_the_destination(
        tmp_path: Path, scp: StoreScp) -> None:
    item = spooled(tmp_path, 1)[0]
    rule = {"set": {"InstitutionName": INSTITUTION}}
    facts = run_prefork(tmp_path, "adopt", port=scp.peer.port, rules=[rule],
                        value_tags=[INSTITUTION_NAME],
                        item={**asdict(item), "path": str(item.path)})
    assert facts["threads"] == 1 and len(facts["forked"]) == 2
    assert facts["adopted"] in facts["forked"]
    assert facts["adopted_parent"] == facts["pid"]
    assert facts["started"] == 1
    assert facts["ok"], facts["detail"]
    assert facts["status"] == 0x0000
    assert facts["values"] == {str(INSTITUTION_NAME): INSTITUTION}
    assert facts["exit_codes"] == [0, 0]  # adopted and left-over worker both ended cleanly
    assert list(scp.stored) == [item.sop_instance_uid]
    assert str(scp.stored[item.sop_instance_uid].InstitutionName) == INSTITUTION
