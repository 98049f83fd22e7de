"""The migration listener: a C-STORE SCP that spools what the runner asked for, and nothing else.

The associations are served by the lean upper layer (runner.dicom.ul.acceptor: blocking
sockets, no polling threads); the data set fragments received are written to the spool
behind a file meta header (runner.dicom.part10), never decoded as a whole. Every SOP class
proposed is accepted (the storage classes pynetdicom knows, and any other: retired, private)
in every transfer syntax pynetdicom names (compressed ones too); the bytes are spooled as
received, never transcoded. Only the four header elements the runner needs are read, and
the pixel data is never decoded (runner.dicom.header).

For each C-STORE the caller's `decide` callback says what to do: STORE (hold it in the
memory spool when one is given and has room, or room comes back within `memory_wait`
seconds, runner.dicom.arena: cut-through; else write it to the spool; then `on_stored`),
DISCARD (answer success, keep nothing) or REFUSE (answer 0x0124). A full spool answers
0xA700 and sets `spool_full` (back-pressure); an unreadable dataset answers 0xC000. Every
non-success answer is also reported through `on_rejected`, and every association or
presentation context refused through `on_turned_away`. Associations are
accepted only when the called AE title is ours and the calling AE title is in the
allow-list; Storage Commitment N-EVENT-REPORTs from an allowed AE go to `on_commitment`.
Callbacks run on the association's thread (one thread per association).

Limits: at most `max_associations` associations at once (more are rejected, transient), PDUs
no larger than `settings.max_pdu` (a bigger one aborts that association), and with
`tls` only TLS connections (with `require_client_certificate`, only clients whose
certificate `ca` issued); a failed handshake is logged and closed, the listener serves on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from runner.dicom.arena import IN_MEMORY, Arena
from runner.dicom.commitment_report import (
    STORAGE_COMMITMENT_PUSH,
    CommitmentReport,
    handle_report,
)
from runner.dicom.header import HeaderError, header_of
from runner.dicom.part10 import file_meta
from runner.dicom.peer import DicomSettings, TlsFiles, check_ae_title
from runner.dicom.sop import VERIFICATION
from runner.dicom.spool import Spool, SpoolEntry, SpoolFull, content_checksum
from runner.dicom.status import (
    CANNOT_UNDERSTAND,
    NOT_AUTHORIZED,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SUCCESS,
)
from runner.dicom.storage_sops import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from runner.dicom.tls import server_context
from runner.dicom.ul import datasets, dimse
from runner.dicom.ul.acceptor import Acceptor, AcceptorPolicy, Handlers, Request, TurnedAway
from runner.errors import DicomError
from runner.profile import defaults

LOGGER = logging.getLogger(__name__)

_ERROR_COMMENT_MAX = 64  # (0000,0902) Error Comment is LO

# When one presentation context proposes several transfer syntaxes, pynetdicom accepts the
# first of this list that is proposed: uncompressed first, so that a sender is never led
# to compress (perhaps lossily) an image it holds uncompressed. A compressed syntax is
# accepted when it is what the context proposes (senders that keep one context per
# syntax, as DCMTK does, then send each instance in the syntax it holds).
_UNCOMPRESSED_FIRST = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
]
ACCEPTED_TRANSFER_SYNTAXES = _UNCOMPRESSED_FIRST + [
    UID(syntax) for syntax in TRANSFER_SYNTAXES if syntax not in _UNCOMPRESSED_FIRST
]
_CONTEXTS: dict[str, tuple[str, ...]] = {
    **{uid: tuple(str(ts) for ts in ACCEPTED_TRANSFER_SYNTAXES) for uid in STORAGE_SOP_CLASSES},
    str(VERIFICATION): tuple(str(ts) for ts in _UNCOMPRESSED_FIRST),
    str(STORAGE_COMMITMENT_PUSH): tuple(str(ts) for ts in _UNCOMPRESSED_FIRST),
}
# Any other abstract syntax a source proposes is taken for a storage SOP class the list
# above does not name (retired, private: Siemens CSA non-image 1.3.12.2.1107.5.9.1, GE and
# Philips private classes, or one newer than pynetdicom 3.0): refusing its context would
# make the source fail the C-MOVE and lose the instance. It is accepted in the same
# transfer syntaxes and spooled as received.
_ANY_SOP_CLASS: tuple[str, ...] = tuple(str(ts) for ts in ACCEPTED_TRANSFER_SYNTAXES)


class Verdict(Enum):
    """What the listener does with an incoming instance."""

    STORE = "store"  # write to the spool, then on_stored
    DISCARD = "discard"  # answer success, keep nothing ("re-date" retrieves)
    REFUSE = "refuse"  # answer 0x0124: no retrieve asked for this instance


@dataclass(frozen=True, slots=True)
class IncomingStore:
    """The header of one incoming C-STORE: who sent it, for which retrieve, which instance."""

    calling_ae: str
    move_originator_ae: str | None
    move_originator_msg_id: int | None
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax: str
    size: int


@dataclass(frozen=True, slots=True)
class Received:
    """An instance written to the spool."""

    header: IncomingStore
    entry: SpoolEntry


@dataclass(frozen=True, slots=True)
class Rejection:
    """A C-STORE answered with a failure: the status sent and why."""

    calling_ae: str
    sop_instance_uid: str
    status: int
    reason: str


def _ignore(_value: object) -> None:
    """The default for callbacks the caller does not need."""


@dataclass(frozen=True, slots=True)
class ListenerCallbacks:
    """What the listener asks (`decide`) and tells (the `on_*` events) its owner."""

    decide: Callable[[IncomingStore], Verdict]
    on_stored: Callable[[Received], None]
    on_rejected: Callable[[Rejection], None] = _ignore
    on_commitment: Callable[[CommitmentReport], None] = _ignore
    on_turned_away: Callable[[TurnedAway], None] = _ignore  # an association or context refused


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """Where the listener listens, as whom, and whom it accepts associations from."""

    ae_title: str
    allowed_aes: frozenset[str]
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port, see Listener.port
    settings: DicomSettings = field(default_factory=DicomSettings)
    max_associations: int = defaults.LISTENER_MAX_ASSOCIATIONS
    tls: TlsFiles | None = None
    memory_wait: float = defaults.LISTENER_MEMORY_WAIT_SECONDS  # for room in the arena

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title)
        if self.memory_wait < 0:
            raise ValueError(f"memory_wait must be >= 0 s: {self.memory_wait}")
        if self.max_associations < 1:
            raise ValueError(f"max_associations must be at least 1: {self.max_associations}")
        if not self.allowed_aes:
            raise ValueError("the listener needs at least one allowed calling AE title")
        for ae_title in self.allowed_aes:
            check_ae_title(ae_title)


class Listener:
    """The C-STORE SCP of the migration, serving in background threads.

    `start()` binds and serves; `stop()` aborts open associations and closes the port.
    With `arena`, instances are held in memory while it has room (cut-through), and go to
    the spool when it has not.
    """

    def __init__(self, config: ListenerConfig, spool: Spool, callbacks: ListenerCallbacks,
                 arena: Arena | None = None):
        self.config = config
        self.spool = spool
        self.callbacks = callbacks
        self.arena = arena
        self._acceptor: Acceptor | None = None

    @property
    def port(self) -> int:
        """The TCP port the listener is bound to (the real one when configured with 0)."""
        if self._acceptor is None:
            raise RuntimeError("the listener is not started")
        return self._acceptor.port

    @property
    def spool_full(self) -> bool:
        """True while the spool refuses instances: start no new retrieves (back-pressure)."""
        return self.spool.is_full

    def start(self) -> Listener:
        """Bind the port and serve in the background.

        DicomError if the port cannot be bound; InputError if the TLS files are unusable.
        """
        if self._acceptor is not None:
            raise RuntimeError("the listener is already started")
        tls = server_context(self.config.tls) if self.config.tls is not None else None
        handlers = Handlers(on_store=self._on_store, on_event_report=self._on_event_report,
                            on_turned_away=self.callbacks.on_turned_away)
        acceptor = Acceptor(self._policy(), handlers, self.config.host, self.config.port, tls)
        try:
            acceptor.start(name=f"listener-{self.config.ae_title}")
        except OSError as error:
            raise DicomError(
                f"cannot listen on {self.config.host}:{self.config.port} "
                f"as {self.config.ae_title}: {error.strerror or error}"
            ) from error
        self._acceptor = acceptor
        LOGGER.info("listener %s on %s:%d%s", self.config.ae_title, self.config.host, self.port,
                    " (TLS)" if tls is not None else "")
        return self

    def stop(self) -> None:
        """Abort open associations and close the port (no-op when not started)."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.stop()

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _policy(self) -> AcceptorPolicy:
        settings = self.config.settings
        return AcceptorPolicy(
            ae_title=self.config.ae_title,
            allowed_aes=self.config.allowed_aes,
            contexts=_CONTEXTS,
            any_abstract=_ANY_SOP_CLASS,
            scp_roles=frozenset({str(STORAGE_COMMITMENT_PUSH)}),
            max_pdu=settings.max_pdu,
            max_associations=self.config.max_associations,
            acse_timeout=settings.acse_timeout,
            network_timeout=settings.network_timeout,
            max_message=self.spool.max_bytes,  # larger than the whole spool: never kept
        )

    def _on_event_report(self, request: Request) -> tuple[int, str]:
        command = request.message.command
        try:
            info = datasets.decode(request.message.dataset(), request.transfer_syntax) \
                if request.message.fragments else None
        except Exception as error:  # pydicom raises many kinds on garbage
            LOGGER.warning("unreadable N-EVENT-REPORT from %s: %s", request.peer.ae_title, error)
            return PROCESSING_FAILURE, "unreadable event information"
        status = handle_report(dimse.text(command, dimse.AFFECTED_SOP_CLASS),
                               dimse.number(command, dimse.EVENT_TYPE) or 0, info,
                               self.callbacks.on_commitment)
        return status, ""

    def _on_store(self, request: Request) -> tuple[int, str]:
        calling_ae = request.peer.ae_title
        sop_uid = dimse.text(request.message.command, dimse.AFFECTED_SOP_INSTANCE)
        try:
            return self._store(request, calling_ae, sop_uid)
        except Exception:  # a callback failed: answer, log, and keep serving
            LOGGER.exception("C-STORE from %s of %s failed in the runner", calling_ae, sop_uid)
            return self._reject(calling_ae, sop_uid, PROCESSING_FAILURE, "runner error")

    def _store(self, request: Request, calling_ae: str, sop_uid: str) -> tuple[int, str]:
        fragments = request.message.fragments or ()
        transfer_syntax = request.transfer_syntax
        try:
            header = header_of(fragments, transfer_syntax)
        except HeaderError as error:
            return self._reject(calling_ae, sop_uid, CANNOT_UNDERSTAND, str(error))
        if header.sop_instance_uid != sop_uid:
            reason = "dataset SOP Instance UID differs from the C-STORE request's"
            return self._reject(calling_ae, sop_uid, CANNOT_UNDERSTAND, reason)
        command = request.message.command
        # The file meta says what the data set is: its own SOP Class UID, not the command's
        # (a sloppy source may send a command that disagrees; the data set is what is kept).
        sop_class = header.sop_class_uid or dimse.text(command, dimse.AFFECTED_SOP_CLASS)
        meta = file_meta(sop_class, sop_uid, transfer_syntax, calling_ae)
        incoming = IncomingStore(
            calling_ae=calling_ae,
            move_originator_ae=dimse.text(command, dimse.MOVE_ORIGINATOR_AE).strip() or None,
            move_originator_msg_id=dimse.number(command, dimse.MOVE_ORIGINATOR_ID),
            sop_class_uid=header.sop_class_uid,
            sop_instance_uid=header.sop_instance_uid,
            study_uid=header.study_uid,
            series_uid=header.series_uid,
            transfer_syntax=transfer_syntax,
            size=len(meta) + request.message.dataset_size,
        )
        verdict = self.callbacks.decide(incoming)
        if verdict is Verdict.REFUSE:
            reason = "refused: no retrieve asked for this instance"
            return self._reject(calling_ae, sop_uid, NOT_AUTHORIZED, reason)
        if verdict is Verdict.DISCARD:
            return SUCCESS, ""
        return self._spool(incoming, (meta, *fragments))  # written as received, not joined

    def _spool(self, incoming: IncomingStore,
               parts: tuple[bytes | memoryview, ...]) -> tuple[int, str]:
        ae, uid = incoming.calling_ae, incoming.sop_instance_uid
        try:
            entry = self._held(parts) or self.spool.write_parts(parts)
        except SpoolFull as error:
            return self._reject(ae, uid, OUT_OF_RESOURCES, f"spool full: {error}")
        except OSError as error:
            LOGGER.error("cannot write to the spool %s: %s", self.spool.root, error)
            return self._reject(ae, uid, OUT_OF_RESOURCES, "cannot write to the spool")
        try:
            self.callbacks.on_stored(Received(incoming, entry))
        except Exception:  # nobody recorded it: do not keep an orphan
            if entry.slot is not None and self.arena is not None:
                self.arena.free(entry.slot)
            else:
                self.spool.remove(entry.name)
            raise
        return SUCCESS, ""

    def _held(self, parts: tuple[bytes | memoryview, ...]) -> SpoolEntry | None:
        """The instance held in the memory spool, if there is one with room."""
        if self.arena is None or \
                (slot := self.arena.write_parts(parts, self.config.memory_wait)) is None:
            return None
        return SpoolEntry(IN_MEMORY, Path(), slot.size, content_checksum(parts), slot)

    def _reject(self, calling_ae: str, sop_uid: str, code: int, reason: str) -> tuple[int, str]:
        LOGGER.warning("C-STORE from %s of %s: 0x%04X %s", calling_ae, sop_uid, code, reason)
        self.callbacks.on_rejected(Rejection(calling_ae, sop_uid, code, reason))
        return code, reason[:_ERROR_COMMENT_MAX]
