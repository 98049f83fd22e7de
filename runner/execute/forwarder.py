"""The forwarder: spooled instances -> morph -> C-STORE to the destination, with retries.

Up to `associations` worker threads, each driving one sender: by default a worker process
(`forward_pool`) holding one long-lived StoreClient, so that reading, morphing and sending
do not compete with the listener for this interpreter's GIL; with `processes=False`, a
StoreClient in the thread itself. A worker process is pipelined: its thread hands over the
next instance before the answer, so it is read and morphed while the destination stores
the current one. A StoreClient is re-opened when broken. An instance no
rule changes is sent as the bytes received, undecoded; one a rule changes has its attributes
re-encoded around its Pixel Data, which is sent as received (runner.dicom.split), unless a
rule concerns Pixel Data itself. When the destination refuses the instance's transfer
syntax (negotiation), it is transcoded losslessly into one it accepts (runner.dicom.transcode,
recorded in the result), or set aside saying why it cannot be. A failed
store is tried again with exponential backoff; transient failures (out of resources, lost
association) and permanent ones (refused, cannot understand) both get `store_attempts`
tries, then the instance is set aside with its reason. Results go to the caller's callbacks;
the spool file is removed by the caller once the ledger holds the result.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.split import encode_split, split_instance
from runner.dicom.store import StoreClient, StoreOutcome
from runner.dicom.transcode import Transcode, TranscodeError, target_syntax, transcode
from runner.dicomdict import value_text
from runner.execute.delayqueue import DelayQueue
from runner.morph import RuleSet

if TYPE_CHECKING:
    from runner.execute.forward_pool import Preforked

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ForwardItem:
    """One spooled instance to send."""

    sop_instance_uid: str
    study_uid: str
    sop_class_uid: str
    transfer_syntax: str
    path: Path
    spool_name: str
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """How forwarding one instance ended (for now: `final` False means it will be retried)."""

    item: ForwardItem
    ok: bool
    final: bool
    status: int | None
    reason: str
    dest_sop_instance_uid: str | None = None
    values: Mapping[int, str] | None = None  # with value_tags: what the rules made of them
    transcoded: Transcode | None = None  # sent in another syntax than received: which, why
    fired: tuple[int, ...] = ()  # the rules (indexes) that changed the instance


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts: `first` seconds, doubling, at most `most`."""

    first: float
    most: float

    def after(self, attempt: int) -> float:
        """The wait before attempt number `attempt + 1` (attempt counts from 1)."""
        return float(min(self.most, self.first * 2.0 ** max(0, attempt - 1)))


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try at forwarding an instance gave.

    `retry` False: trying again cannot help (the spooled file cannot be read, the rules
    fail on it, or forwarding raised); the instance is set aside at once.
    """

    ok: bool
    status: int | None
    detail: str
    dest_sop_instance_uid: str | None = None
    retry: bool = True
    values: Mapping[int, str] | None = None
    transcoded: Transcode | None = None
    fired: tuple[int, ...] = ()


INTERNAL_ERROR = Attempt(False, None, "internal error while forwarding", retry=False)


@dataclass(frozen=True, slots=True)
class Job:
    """What a sender does to each instance: the rules, and the tags whose results to report."""

    rules: RuleSet
    value_tags: tuple[int, ...] = ()


Store = Callable[[StoreClient], StoreOutcome]


@dataclass(frozen=True, slots=True)
class Prepared:
    """One instance made ready to send: the store to make (already morphed and encoded), or
    why it cannot be sent (`refusal`). Preparing needs no association, so a worker prepares
    the next instance while the destination is still storing this one."""

    store: Store | None
    refusal: Attempt | None = None
    dest_sop_instance_uid: str | None = None
    values: Mapping[int, str] | None = None
    # when the destination refuses the syntax: the instance prepared for one it accepts
    fallback: Callable[[tuple[str, ...]], Prepared] | None = None
    transcoded: Transcode | None = None
    fired: tuple[int, ...] = ()


def forward_once(client: StoreClient, job: Job, item: ForwardItem) -> Attempt:
    """Read, morph (when a rule applies) and C-STORE one spooled instance."""
    return deliver(client, prepare(job, item))


def deliver(client: StoreClient, prepared: Prepared) -> Attempt:
    """Make the store `prepared` holds (or answer its refusal); when the destination refuses
    the instance's transfer syntax, once more transcoded losslessly (`prepared.fallback`)."""
    if prepared.store is None:
        assert prepared.refusal is not None
        return prepared.refusal
    outcome = prepared.store(client)
    if outcome.syntax_refused and prepared.fallback is not None:
        return deliver(client, prepared.fallback(outcome.accepted_syntaxes))
    if not outcome.ok:
        return Attempt(False, outcome.status, outcome.detail)
    return Attempt(True, outcome.status, outcome.detail, prepared.dest_sop_instance_uid,
                   values=prepared.values, transcoded=prepared.transcoded,
                   fired=prepared.fired)


def prepare(job: Job, item: ForwardItem) -> Prepared:
    """Read and morph one spooled instance: what to store (in the syntax received), and
    how to transcode it if the destination refuses that syntax."""
    return replace(_prepare(job, item), fallback=lambda accepted: _transcoded(job, item,
                                                                              accepted))


def _prepare(job: Job, item: ForwardItem) -> Prepared:
    if job.rules.is_empty:
        return Prepared(lambda client: client.store_file(item.path, item.sop_class_uid,
                                                         item.transfer_syntax))
    if job.rules.reads_pixel_data:
        return _prepare_whole(job, item)
    try:
        raw = item.path.read_bytes()
        split = split_instance(raw)
    except Exception as exc:  # OSError, MetaError, SplitError; pydicom raises many kinds
        return _unreadable(exc)
    if split is None:
        return _prepare_whole(job, item)
    ds = split.dataset
    syntax = split.meta.transfer_syntax
    return _morph(
        job, ds,
        unchanged=_parts_store(item.sop_class_uid, split.meta.sop_instance_uid, syntax,
                               [memoryview(raw)[split.meta.dataset_offset:]]),
        changed=lambda changed_tags: _parts_store(
            str(ds.SOPClassUID), str(ds.SOPInstanceUID), syntax,
            encode_split(split, changed_tags)))


def _prepare_whole(job: Job, item: ForwardItem) -> Prepared:
    """The instance read and morphed whole (rules about Pixel Data, files without it)."""
    try:
        ds = dcmread(item.path)
    except (InvalidDicomError, OSError, ValueError) as exc:
        return _unreadable(exc)
    return _morph(
        job, ds,
        unchanged=lambda client: client.store_file(item.path, item.sop_class_uid,
                                                   item.transfer_syntax),
        changed=lambda _changed_tags: lambda client: client.store_dataset(ds))


def _transcoded(job: Job, item: ForwardItem, accepted: tuple[str, ...]) -> Prepared:
    """The instance read whole, transcoded losslessly into a syntax of `accepted`, then
    morphed: or why it cannot be sent (not retried: the destination's answer stands)."""
    try:
        plan = target_syntax(item.transfer_syntax, accepted)
        ds = dcmread(item.path)
        transcode(ds, plan)
    except TranscodeError as exc:
        return Prepared(None, Attempt(False, None, f"cannot be sent losslessly: {exc}",
                                      retry=False))
    except (InvalidDicomError, OSError, ValueError) as exc:
        return _unreadable(exc)
    store: Store = lambda client: client.store_dataset(ds)  # noqa: E731
    return replace(_morph(job, ds, unchanged=store, changed=lambda _tags: store),
                   transcoded=plan)


def _parts_store(sop_class_uid: str, sop_instance_uid: str, syntax: str,
                 parts: list[bytes | memoryview]) -> Store:
    return lambda client: client.store_parts(sop_class_uid, sop_instance_uid, syntax, parts)


def _unreadable(exc: Exception) -> Prepared:
    return Prepared(None, Attempt(False, None, f"spooled file cannot be read: {exc}",
                                  retry=False))


def _morph(job: Job, ds: Dataset, unchanged: Store,
           changed: Callable[[frozenset[int]], Store]) -> Prepared:
    """Apply the rules to `ds`: store with `unchanged` when none fired, else with what
    `changed` makes of the tags the rules changed; the values of the job's `value_tags`."""
    result = job.rules.apply(ds)
    if not result.ok:
        return Prepared(None, Attempt(False, None, f"morphing failed: {result.failed}",
                                      retry=False))
    values = {tag: value_text(ds, tag) for tag in job.value_tags} if job.value_tags else None
    if not result.fired:
        return Prepared(unchanged, values=values)
    change = result.sop_instance_uid_change
    return Prepared(changed(result.changed_tags), None,
                    change.destination if change else None, values, fired=result.fired)


class Sender(Protocol):
    """Forwards one instance at a time (a StoreClient here, or a worker process)."""

    def prepare(self) -> None:
        """Get ready before the first instance (start the worker process, if any)."""
        ...

    def send(self, item: ForwardItem) -> Attempt:
        """One try at forwarding `item`."""
        ...

    def close(self) -> None:
        """Release the association (and the worker process, if any)."""
        ...


@runtime_checkable
class Pipelined(Sender, Protocol):
    """A sender that takes up to `depth` instances before answering the first: while the
    destination stores one, the next is already read and morphed (in a worker process)."""

    depth: int

    def submit(self, item: ForwardItem) -> None:
        """Hand over `item`; its Attempt comes from `collect`, in submission order."""
        ...

    def collect(self) -> Attempt:
        """The Attempt of the oldest instance submitted and not yet collected."""
        ...


class ThreadSender:
    """Forwards in the calling thread with its own StoreClient."""

    def __init__(self, destination: Peer, calling_ae: str, settings: DicomSettings,
                 job: Job) -> None:
        self.client = StoreClient(destination, calling_ae, settings)
        self.job = job

    def prepare(self) -> None:
        """Nothing to prepare: the association opens with the first store."""

    def send(self, item: ForwardItem) -> Attempt:
        """Forward `item` now, in this thread."""
        return forward_once(self.client, self.job, item)

    def close(self) -> None:
        """Release the association."""
        self.client.close()


def _can_ship(rules: RuleSet) -> bool:
    from runner.execute.forward_pool import can_ship

    return can_ship(rules)


class Forwarder:
    """Worker threads that forward spooled instances; `submit`, then `close` when done.

    With `processes` (the default) each thread hands its instances to its own worker
    process, started with the thread. Results reach `on_result` from one delivery thread
    in this process, so a sender never waits for the caller's bookkeeping before taking
    its next instance. With `value_tags`, each successful result carries the values the
    rules gave those tags (`ForwardResult.values`), computed where the instance was morphed.
    """

    def __init__(self, destination: Peer, calling_ae: str, settings: DicomSettings,
                 rules: RuleSet, associations: int, attempts: int, backoff: Backoff,
                 on_result: Callable[[ForwardResult], None], processes: bool = True,
                 value_tags: Sequence[int] = (), preforked: Preforked | None = None) -> None:
        self.destination = destination
        self.calling_ae = calling_ae
        self.settings = settings
        self.rules = rules
        self.attempts = attempts
        self.backoff = backoff
        self.on_result = on_result
        self.value_tags = tuple(value_tags)
        self.processes = processes and _can_ship(rules)
        self.preforked = preforked
        self.queue: DelayQueue[ForwardItem] = DelayQueue()
        self.results: SimpleQueue[tuple[ForwardItem, Attempt] | None] = SimpleQueue()
        self.threads = [threading.Thread(target=self._work, name=f"forward-{i}", daemon=True)
                        for i in range(associations)]
        self.delivery = threading.Thread(target=self._deliver, name="forward-results",
                                         daemon=True)

    def start(self) -> Forwarder:
        """Start the worker threads (and, with `processes`, their worker processes)."""
        self.delivery.start()
        for thread in self.threads:
            thread.start()
        return self

    def submit(self, item: ForwardItem) -> None:
        """Queue an instance for forwarding."""
        self.queue.put(item)

    def idle(self) -> bool:
        """Nothing queued, waiting for a retry, being sent, or awaiting delivery."""
        return self.queue.idle()

    def pending(self) -> int:
        """Instances queued, being sent, or awaiting delivery."""
        return len(self.queue)

    def close(self) -> None:
        """Stop the workers (what is still queued stays in the spool for the next run);
        results of the stores already made are delivered before this returns."""
        self.queue.close()
        for thread in self.threads:
            thread.join(timeout=max(self.settings.dimse_timeout, 5.0))
        self.results.put(None)
        self.delivery.join(timeout=max(self.settings.dimse_timeout, 5.0))
        if self.preforked is not None:
            self.preforked.close()  # workers no thread adopted (fewer threads than workers)

    def make_sender(self) -> Sender:
        """The sender one worker thread uses."""
        job = Job(self.rules, self.value_tags)
        if not self.processes:
            return ThreadSender(self.destination, self.calling_ae, self.settings, job)
        from runner.execute.forward_pool import ProcessSender

        return ProcessSender(self.destination, self.calling_ae, self.settings, job,
                             self.preforked)

    def _work(self) -> None:
        sender = self.make_sender()
        try:
            sender.prepare()
            if isinstance(sender, Pipelined) and sender.depth > 1:
                self._pipeline(sender)
                return
            while (item := self.queue.get()) is not None:
                item = replace(item, attempt=item.attempt + 1)
                self.results.put((item, self._send(sender, item)))
        finally:
            sender.close()

    def _pipeline(self, sender: Pipelined) -> None:
        """Keep up to `sender.depth` instances with the sender: wait for the queue only when
        none is out, else take what is ready; results go out in submission order."""
        out: deque[ForwardItem] = deque()
        closed = False
        while out or not closed:
            item = None
            if not closed and len(out) < sender.depth:
                item = self.queue.take_ready() if out else self.queue.get()
                closed = item is None and not out
            if item is not None:
                item = replace(item, attempt=item.attempt + 1)
                try:
                    sender.submit(item)
                except Exception:  # a bug (or no worker can start) must not stop this thread
                    log.exception("handing an instance to its worker failed unexpectedly")
                    self.results.put((item, INTERNAL_ERROR))
                    continue
                out.append(item)
                continue
            if out:
                self.results.put((out.popleft(), self._collect(sender)))

    @staticmethod
    def _send(sender: Sender, item: ForwardItem) -> Attempt:
        try:
            return sender.send(item)
        except Exception:  # a bug must not silently stop a worker
            log.exception("forwarding failed unexpectedly")
            return INTERNAL_ERROR

    @staticmethod
    def _collect(sender: Pipelined) -> Attempt:
        try:
            return sender.collect()
        except Exception:  # a bug must not silently stop a worker
            log.exception("forwarding failed unexpectedly")
            return INTERNAL_ERROR

    def _deliver(self) -> None:
        while (result := self.results.get()) is not None:
            try:
                self._settle(*result)
            except Exception:  # the caller's callback failed: keep delivering the others
                log.exception("recording a forward result failed")
            finally:
                self.queue.done()

    def _settle(self, item: ForwardItem, attempt: Attempt) -> None:
        if attempt.ok:
            self.on_result(ForwardResult(item, True, True, attempt.status, attempt.detail,
                                         attempt.dest_sop_instance_uid, attempt.values,
                                         attempt.transcoded, attempt.fired))
        elif not attempt.retry:
            self._finish(item, attempt.status, attempt.detail)
        elif item.attempt < self.attempts:
            self.on_result(ForwardResult(item, False, False, attempt.status, attempt.detail))
            self.queue.put(item, self.backoff.after(item.attempt))
        else:
            self._finish(item, attempt.status, f"{attempt.detail} (after {item.attempt} attempts)")

    def _finish(self, item: ForwardItem, status: int | None, reason: str) -> None:
        self.on_result(ForwardResult(item, False, True, status, reason))
