"""The sending seam: what is sent (`ForwardItem`), what one try gave (`Attempt`), how it
ended (`ForwardResult`), and the `Sender` protocol any kind of destination implements.

The forwarder (`runner.execute.sending.forwarder`) drives `Sender`s it gets from a `Senders`
factory picked by the caller: the DIMSE C-STORE senders (`runner.execute.sending.dimse`) are
one implementation; a DICOMweb (STOW-RS) sender would be another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from runner.dicom.arena import Slot
from runner.dicom.transcode import Transcode


@dataclass(frozen=True, slots=True)
class ForwardItem:
    """One received instance to send: spooled at `path`, or held in the memory spool at
    `slot` (cut-through: `path` is then not a file)."""

    sop_instance_uid: str
    study_uid: str
    sop_class_uid: str
    transfer_syntax: str
    path: Path
    spool_name: str
    attempt: int = 0
    slot: Slot | None = None


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


class Sender(Protocol):
    """Forwards one instance at a time (a StoreClient, a worker process, ...)."""

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


class Senders(Protocol):
    """Where the forwarder's worker threads get their senders: one `new()` per thread."""

    def new(self) -> Sender:
        """A sender for one worker thread."""
        ...

    def close(self) -> None:
        """Release what no sender took (worker processes forked ahead, ...)."""
        ...
