"""One instance made ready for C-STORE and stored: read from the spool (or, cut through,
from the memory spool in place), morphed, encoded.

An instance no rule changes is sent as the bytes received, undecoded; one a rule changes has
its attributes re-encoded around its Pixel Data, which is sent as received
(runner.dicom.split), unless a rule concerns Pixel Data itself. When the destination refuses
the instance's transfer syntax (negotiation), it is transcoded losslessly into one it accepts
(runner.dicom.transcode, recorded in the result), or set aside saying why it cannot be.
Preparing needs no association, so a worker prepares the next instance while the destination
is still storing this one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from io import BytesIO

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from runner.dicom.arena import ArenaHandle
from runner.dicom.split import encode_split, split_instance
from runner.dicom.store import StoreClient, StoreOutcome
from runner.dicom.transcode import Transcode, TranscodeError, target_syntax, transcode
from runner.dicomdict import value_text
from runner.execute.sending.seam import Attempt, ForwardItem
from runner.morph import RuleSet


@dataclass(frozen=True, slots=True)
class Job:
    """What a sender does to each instance: the rules, and the tags whose results to report."""

    rules: RuleSet
    value_tags: tuple[int, ...] = ()
    arena: ArenaHandle | None = None  # the memory spool, for items held there

    def read(self, item: ForwardItem) -> bytes | memoryview:
        """The instance's Part-10 bytes: in place from the memory spool, else read from its
        spooled file (OSError if it cannot be)."""
        if item.slot is not None:
            if self.arena is None:
                raise OSError("the instance is held in memory, but no memory spool is known")
            return self.arena.view(item.slot)
        return item.path.read_bytes()

    def dataset(self, item: ForwardItem) -> Dataset:
        """The instance read whole by pydicom."""
        if item.slot is not None:
            return dcmread(BytesIO(self.read(item)))
        return dcmread(item.path)


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
        return _as_received(job, item)
    if job.rules.reads_pixel_data:
        return _prepare_whole(job, item)
    try:
        raw = bytes(job.read(item))  # pydicom's raw elements take bytes
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
        ds = job.dataset(item)
    except (InvalidDicomError, OSError, ValueError) as exc:
        return _unreadable(exc)
    return _morph(
        job, ds,
        unchanged=lambda client: client.store_part10(job.read(item), item.sop_class_uid,
                                                     item.transfer_syntax),
        changed=lambda _changed_tags: lambda client: client.store_dataset(ds))


def _as_received(job: Job, item: ForwardItem) -> Prepared:
    """The instance sent as received, undecoded."""
    try:
        raw = job.read(item)
    except OSError as exc:
        return _unreadable(exc)
    return Prepared(lambda client: client.store_part10(raw, item.sop_class_uid,
                                                        item.transfer_syntax,
                                                        item.path.name or "the instance"))


def _transcoded(job: Job, item: ForwardItem, accepted: tuple[str, ...]) -> Prepared:
    """The instance read whole, transcoded losslessly into a syntax of `accepted`, then
    morphed: or why it cannot be sent (not retried: the destination's answer stands)."""
    try:
        plan = target_syntax(item.transfer_syntax, accepted)
        ds = job.dataset(item)
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
