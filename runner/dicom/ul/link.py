"""PDUs and DIMSE messages on a connected socket: blocking reads with timeouts, no polling.

`Link.read_pdu` reads one PDU (refusing, before reading its body, one longer than allowed),
`Link.read_message` reassembles one DIMSE message from P-DATA-TF PDUs, keeping the data
set as the received fragments (memoryviews into each PDU's buffer: no copy), and
`Link.send_message` fragments one into PDUs of the peer's maximum length, all sent by one
`sendmsg` on plain sockets (headers and data without joining them: a 512 KB instance to a
peer taking 16 KB PDUs is one system call, not 32), a `sendall` per PDU on TLS.
A peer's A-RELEASE-RQ or A-ABORT in place of a P-DATA-TF ends `read_message` as `Release`
or `Aborted`; a closed connection as `Closed`.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from runner.dicom.ul import dimse, pdu

# A PDU may overrun its deadline by this much: the socket's limit is shortened only when
# the time left is shorter than it by more (a fast PDU costs no extra system call).
_DEADLINE_SLACK = 0.5
OTHER_PDU_MAX = 1 << 20  # an A-ASSOCIATE-RQ with 128 contexts is far below this
# buffers one sendmsg may take (the kernel's IOV_MAX: 1024 on Linux), an even number so a
# call never ends between a PDU's headers and its fragment by the list's cut
_IOV_MAX = (os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024) // 2 * 2
Buffer = bytes | bytearray | memoryview


class Closed(ConnectionError):
    """The connection ended (or was reset) where a PDU was expected."""


class Aborted(ConnectionError):
    """The peer sent an A-ABORT."""


class Release(Exception):
    """The peer asked to release the association (A-RELEASE-RQ) between messages."""


class UnexpectedPdu(pdu.PduError):
    """A PDU of a type that has no place here (e.g. an A-ASSOCIATE-RQ mid-association)."""

    def __init__(self, pdu_type: int) -> None:
        super().__init__(f"unexpected PDU type 0x{pdu_type:02X}")
        self.pdu_type = pdu_type


class TooLong(pdu.PduError):
    """A PDU announcing more bytes than allowed (its body is not read)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One DIMSE message: its presentation context, command set and data set fragments."""

    context_id: int
    command: dimse.Command
    fragments: tuple[memoryview, ...] | None  # None: the command has no data set
    oversized: bool = False  # its data set was larger than allowed and was not kept

    def dataset(self) -> bytes:
        """The data set as one bytes object (b"" when there is none)."""
        return b"".join(self.fragments) if self.fragments else b""

    @property
    def dataset_size(self) -> int:
        """Bytes in the data set."""
        return sum(len(part) for part in self.fragments) if self.fragments else 0


class Link:
    """One association's connection: reads and writes PDUs and DIMSE messages.

    `max_receive` bounds P-DATA-TF PDUs (the maximum length we announced; 0: only
    OTHER_PDU_MAX); `max_send` is the peer's announced maximum (0: no limit).
    """

    def __init__(self, sock: socket.socket, max_receive: int, max_send: int = 0,
                 max_message: int = 0) -> None:
        self.sock = sock
        self.max_receive = max_receive
        self.max_send = max_send
        self.max_message = max_message  # bytes one DIMSE message may hold (0: no limit)
        self.pdu_deadline = 0.0  # seconds a whole PDU may take to arrive (0: per read only)
        self._timeout = 0.0  # each read's and write's own limit (set_timeout)
        self._applied = 0.0  # the limit the socket holds now (shorter near a PDU deadline)
        self._header = bytearray(6)
        self._plain = not isinstance(sock, ssl.SSLSocket)
        self._pending: deque[tuple[int, int, memoryview]] = deque()

    def set_timeout(self, seconds: float) -> None:
        """The time limit of each read and each write from now on (TimeoutError after it).

        A plain socket stays blocking and the kernel keeps the time (SO_RCVTIMEO and
        SO_SNDTIMEO): with Python's own timeouts every read is a poll() and a recv(), and
        a PDU body cannot be read in one call (MSG_WAITALL). TLS sockets use Python's.
        """
        if seconds <= 0:
            raise ValueError(f"a timeout must be > 0 s: {seconds}")
        self._timeout = seconds
        self._apply(seconds)

    def _apply(self, seconds: float) -> None:
        """Give the socket the limit `seconds` (the configured one stays `_timeout`)."""
        self._applied = seconds
        if not self._plain:
            self.sock.settimeout(seconds)
            return
        self.sock.settimeout(None)
        whole, micro = int(seconds), min(999_999, round(seconds % 1 * 1e6))
        value = struct.pack("ll", whole, micro if whole or micro else 1)  # 0 0: no limit
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)

    def read_pdu(self, limit: int = 0) -> tuple[int, memoryview]:
        """(type, body) of the next PDU (of at most `limit` bytes, when given); Closed at end
        of connection, TimeoutError if silent, or (with `pdu_deadline`) if the whole PDU,
        from its first byte, takes longer: a peer trickling a byte at a time cannot hold the
        connection. The wait for that first byte is the plain read limit."""
        deadline = None
        try:
            self._fill(memoryview(self._header)[:1])
            if self.pdu_deadline:
                deadline = time.monotonic() + self.pdu_deadline
            self._fill(memoryview(self._header)[1:], deadline)
            pdu_type, length = pdu.read_header(self._header)
            if pdu_type not in pdu.PDU_TYPES:
                raise UnexpectedPdu(pdu_type)
            allowed = self.max_receive if pdu_type == pdu.P_DATA_TF and self.max_receive \
                else max(self.max_receive, OTHER_PDU_MAX)
            allowed = min(allowed, limit) if limit else allowed
            if length > allowed:
                raise TooLong(f"PDU type 0x{pdu_type:02X} of {length} bytes, more than the "
                              f"{allowed} allowed")
            body = memoryview(bytearray(length))
            self._fill(body, deadline)
        finally:
            if self._applied != self._timeout:
                self._apply(self._timeout)  # each read's own limit again
        return pdu_type, body

    def readable(self, seconds: float) -> bool:
        """Whether the next PDU has begun to arrive within `seconds` (PDVs kept from the last
        one, TLS bytes decrypted already, or bytes on the socket); reads nothing."""
        if self._pending or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            return True
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(max(0, round(seconds * 1000))))

    def read_message(self) -> Message:
        """The next complete DIMSE message (see the module docstring for how others end).

        PDVs that follow the end of a message in the same PDU are kept for the next call.
        """
        assembly = _Assembly()
        while True:
            while self._pending:
                message = assembly.add(*self._pending.popleft())
                if message is not None:
                    return message
            pdu_type, body = self.read_pdu()
            if pdu_type != pdu.P_DATA_TF:
                self._not_data(pdu_type, body, assembly.empty)
            self._pending.extend(pdu.iter_pdvs(body))
            assembly.size += len(body)
            if self.max_message and assembly.size > self.max_message:
                assembly.oversized = True  # read on to its end, keeping none of its data

    def send_message(self, context_id: int, command: bytes,
                     dataset: Sequence[Buffer] = ()) -> None:
        """Send a command set and (when given) a data set, fragmented for the peer."""
        self._send_stream(context_id, [command], pdu.PDV_COMMAND)
        if dataset:
            self._send_stream(context_id, dataset, 0)

    def send(self, raw: bytes) -> None:
        """Send an encoded PDU as it is."""
        try:
            self.sock.sendall(raw)
        except BlockingIOError as error:  # SO_SNDTIMEO passed
            raise TimeoutError("timed out") from error

    def close(self) -> None:
        """Close the connection (shutting it down first, so the peer sees the end)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _send_stream(self, context_id: int, parts: Sequence[Buffer], control: int) -> None:
        # a peer announcing a maximum of 6 bytes or less leaves no room for data: send 1-byte
        # fragments rather than loop forever on empty (or negative-sized) ones
        chunk = max(self.max_send - 6, 1) if self.max_send else 1 << 20
        views = [memoryview(part).cast("B") for part in parts if len(part)]
        total = sum(len(view) for view in views)
        if total == 0:
            self._send_parts([pdu.pdata_header(context_id, control | pdu.PDV_LAST, 0), b""])
            return
        sent = 0
        pdus: list[Buffer] = []  # each PDU's headers, then its fragment
        for index, view in enumerate(views):
            offset = 0
            while offset < len(view):
                piece = view[offset: offset + chunk]
                offset += len(piece)
                sent += len(piece)
                # a fragment never spans two parts: simpler, and PDUs may be shorter than max
                last = pdu.PDV_LAST if sent == total and index == len(views) - 1 else 0
                pdus += (pdu.pdata_header(context_id, control | last, len(piece)), piece)
        self._send_parts(pdus)

    def _send_parts(self, parts: list[Buffer]) -> None:
        """Send PDUs given as (headers, fragment) parts: on a plain socket as few `sendmsg`
        as the kernel's limit of buffers a call allows (_IOV_MAX), on TLS a PDU at a time."""
        if not self._plain:
            for at in range(0, len(parts), 2):
                self.sock.sendall(b"".join(parts[at: at + 2]))
            return
        for at in range(0, len(parts), _IOV_MAX):
            pending = parts[at: at + _IOV_MAX]
            while pending:
                try:
                    sent = self.sock.sendmsg(pending)
                except BlockingIOError as error:  # SO_SNDTIMEO passed
                    raise TimeoutError("timed out") from error
                pending = _advance(pending, sent)

    def _not_data(self, pdu_type: int, body: memoryview, between_messages: bool) -> None:
        if pdu_type == pdu.RELEASE_RQ and between_messages:
            raise Release()
        if pdu_type == pdu.ABORT:
            raise Aborted("the peer aborted the association")
        raise UnexpectedPdu(pdu_type)

    def _fill(self, view: memoryview, deadline: float | None = None) -> None:
        received, size = 0, len(view)
        flags = socket.MSG_WAITALL if self._plain else 0
        while received < size:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("a PDU took longer than its deadline to arrive")
                if not self._applied or left < self._applied - _DEADLINE_SLACK:
                    self._apply(left)  # only near the deadline: no system call per PDU
            try:
                count = self.sock.recv_into(view[received:], 0, flags)
            except BlockingIOError as error:  # SO_RCVTIMEO passed
                raise TimeoutError("timed out") from error
            if count == 0:
                raise Closed("the peer closed the connection")
            received += count


class _Assembly:
    """One DIMSE message being put together from its PDVs (PS3.7 section 6.3.1)."""

    def __init__(self) -> None:
        self.context = -1
        self.command_parts: list[memoryview] = []
        self.command: dimse.Command | None = None
        self.data: list[memoryview] = []
        self.size = 0  # bytes of the PDUs read for it (a bound on its memory)
        self.oversized = False  # more than the link's max_message: its data is not kept

    @property
    def empty(self) -> bool:
        """No fragment of the message has arrived yet."""
        return self.context == -1

    def add(self, context_id: int, control: int, fragment: memoryview) -> Message | None:
        """Take one PDV; the message once it is complete."""
        if self.context not in (-1, context_id):
            raise pdu.PduError("a DIMSE message spread over two presentation contexts")
        self.context = context_id
        if control & pdu.PDV_COMMAND:
            if self.command is not None:
                raise pdu.PduError("a command fragment after the command was complete")
            self.command_parts.append(fragment)
            if not control & pdu.PDV_LAST:
                return None
            try:
                self.command = dimse.decode(b"".join(self.command_parts))
            except dimse.DimseError as error:  # a malformed PDU to the callers
                raise pdu.PduError(f"an unreadable command set: {error}") from error
            if not dimse.has_dataset(self.command):
                return Message(context_id, self.command, None)
            return None
        if self.command is None:
            raise pdu.PduError("a data set fragment before its command")
        if self.oversized:
            self.data.clear()  # past the limit: nothing of it is held
        else:
            self.data.append(fragment)
        if control & pdu.PDV_LAST:
            return Message(context_id, self.command, tuple(self.data), self.oversized)
        return None


def _advance(parts: list[Buffer], sent: int) -> list[Buffer]:
    """What remains of `parts` once `sent` bytes of them have gone."""
    done = 0
    while done < len(parts) and sent >= len(parts[done]):
        sent -= len(parts[done])
        done += 1
    rest = parts[done:]
    if rest and sent:
        rest[0] = memoryview(rest[0])[sent:]
    return rest
