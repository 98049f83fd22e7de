"""Link: DIMSE messages over a connected socket pair, fragmentation, limits and how reads end."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from runner.dicom.ul import dimse, pdu
from runner.dicom.ul.link import (
    OTHER_PDU_MAX,
    Aborted,
    Closed,
    Link,
    Release,
    TooLong,
    UnexpectedPdu,
)

COMMAND = dimse.encode({
    dimse.AFFECTED_SOP_CLASS: "1.2.840.10008.5.1.4.1.1.2",
    dimse.COMMAND_FIELD: dimse.C_STORE_RQ,
    dimse.MESSAGE_ID: 1,
    dimse.PRIORITY: 0,
    dimse.DATASET_TYPE: dimse.HAS_DATASET,
    dimse.AFFECTED_SOP_INSTANCE: "1.2.3.4",
})
ECHO = dimse.encode({dimse.COMMAND_FIELD: dimse.C_ECHO_RQ, dimse.MESSAGE_ID: 2,
                     dimse.DATASET_TYPE: dimse.NO_DATASET})
MEGABYTE = os.urandom(1 << 20)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two connected sockets; every blocking call gives up after 5 s instead of hanging."""
    left, right = socket.socketpair()
    left.settimeout(5)
    right.settimeout(5)
    yield left, right
    left.close()
    right.close()


class _Background:
    """Runs a sender (which may block on a full socket buffer) in a thread; `join` re-raises."""

    def __init__(self, target: Callable[[], None]) -> None:
        self._target = target
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as error:
            self._errors.append(error)

    def join(self) -> None:
        self._thread.join(5)
        assert not self._thread.is_alive(), "the sender did not finish"
        if self._errors:
            raise self._errors[0]


def _pdata(*pdvs: tuple[int, int, bytes]) -> bytes:
    """One P-DATA-TF PDU holding the given (context id, control, data) PDVs."""
    items = b"".join(pdu.pdata_header(cid, control, len(data))[6:] + data
                     for cid, control, data in pdvs)
    return pdu.header(pdu.P_DATA_TF, len(items)) + items


# -- sending and reassembling --------------------------------------------------------------------


def test_send_message_fragments_a_1_mb_data_set_into_pdus_within_max_send(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    max_send = 16384
    sender = _Background(lambda: Link(left, 0, max_send).send_message(3, COMMAND, [MEGABYTE]))
    reader = Link(right, 0)
    lengths: list[int] = []
    pdvs: list[tuple[int, int, bytes]] = []
    while not pdvs or pdvs[-1][1] != pdu.PDV_LAST:
        pdu_type, body = reader.read_pdu()
        assert pdu_type == pdu.P_DATA_TF
        lengths.append(len(body))
        pdvs.extend((cid, control, bytes(data)) for cid, control, data in pdu.iter_pdvs(body))
    sender.join()
    assert max(lengths) == max_send
    assert len(pdvs) == len(lengths)  # one PDV per PDU
    assert {cid for cid, _, _ in pdvs} == {3}
    assert pdvs[0] == (3, pdu.PDV_COMMAND | pdu.PDV_LAST, COMMAND)
    controls = [control for _, control, _ in pdvs[1:]]
    assert controls == [0] * (len(controls) - 1) + [pdu.PDV_LAST]
    assert b"".join(data for _, _, data in pdvs[1:]) == MEGABYTE
    assert len(pdvs) - 1 == -(-len(MEGABYTE) // (max_send - 6))


def test_read_message_reassembles_the_same_data_set_and_command(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    parts: list[bytes | memoryview] = [MEGABYTE[:300_001], memoryview(MEGABYTE)[300_001:], b""]
    sender = _Background(lambda: Link(left, 0, 4096).send_message(1, COMMAND, parts))
    message = Link(right, 4096).read_message()
    sender.join()
    assert message.context_id == 1
    assert message.command == dimse.decode(COMMAND)
    assert message.fragments is not None
    assert all(isinstance(part, memoryview) for part in message.fragments)
    assert message.dataset_size == len(MEGABYTE)
    assert message.dataset() == MEGABYTE


def test_a_command_longer_than_one_pdu_is_sent_in_command_fragments(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    Link(left, 0, max_send=16).send_message(1, ECHO)
    message = Link(right, 16).read_message()
    assert message.command == dimse.decode(ECHO)
    assert message.fragments is None
    assert message.dataset() == b""
    assert message.dataset_size == 0


def test_messages_follow_each_other_on_one_link(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    sender = Link(left, 0, 1024)
    reader = Link(right, 1024)
    sender.send_message(1, ECHO)
    sender.send_message(3, COMMAND, [b"abc"])
    sender.send_message(1, ECHO)
    first, second, third = reader.read_message(), reader.read_message(), reader.read_message()
    assert (first.context_id, first.fragments) == (1, None)
    assert (second.context_id, second.dataset()) == (3, b"abc")
    assert third.command == dimse.decode(ECHO)


def test_an_empty_data_set_is_sent_as_one_empty_last_fragment(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    Link(left, 0).send_message(1, COMMAND, [b""])
    message = Link(right, 0).read_message()
    assert message.fragments is not None
    assert [bytes(part) for part in message.fragments] == [b""]


def test_command_and_data_pdvs_in_one_pdu_make_one_message(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(_pdata((1, pdu.PDV_COMMAND, COMMAND[:10]),
                        (1, pdu.PDV_COMMAND | pdu.PDV_LAST, COMMAND[10:]),
                        (1, 0, b"data-1"))
                 + _pdata((1, pdu.PDV_LAST, b"data-2")))
    message = Link(right, 0).read_message()
    assert message.command == dimse.decode(COMMAND)
    assert message.dataset() == b"data-1data-2"


def _split_pdus(raw: bytes) -> list[tuple[int, int, bytes]]:
    """(context id, control, data) of each PDV of a stream of P-DATA-TF PDUs, checking that
    each PDU holds exactly its announced length."""
    pdvs: list[tuple[int, int, bytes]] = []
    offset = 0
    while offset < len(raw):
        pdu_type, length = pdu.read_header(raw[offset:offset + 6])
        assert pdu_type == pdu.P_DATA_TF
        body = memoryview(raw)[offset + 6: offset + 6 + length]
        assert len(body) == length
        pdvs.extend((cid, control, bytes(data)) for cid, control, data in pdu.iter_pdvs(body))
        offset += 6 + length
    return pdvs


def test_send_message_survives_short_writes() -> None:
    class Trickle:
        """A plain socket that takes at most 5 bytes per sendmsg."""

        def __init__(self) -> None:
            self.received = bytearray()

        def sendmsg(self, buffers: list[bytes | memoryview]) -> int:
            taken = b"".join(bytes(part) for part in buffers)[:5]
            self.received += taken
            return len(taken)

    sock = Trickle()
    Link(sock, 0, max_send=64).send_message(  # type: ignore[arg-type]
        1, COMMAND, [b"a" * 100, memoryview(b"b" * 101)])
    pdvs = _split_pdus(bytes(sock.received))
    assert all(len(data) <= 64 - 6 for _, _, data in pdvs)
    assert b"".join(data for _, control, data in pdvs if control & pdu.PDV_COMMAND) == COMMAND
    assert b"".join(data for _, control, data in pdvs if not control & pdu.PDV_COMMAND) \
        == b"a" * 100 + b"b" * 101
    assert [control & pdu.PDV_LAST for _, control, _ in pdvs].count(pdu.PDV_LAST) == 2


def test_a_peer_announcing_a_maximum_of_6_bytes_gets_1_byte_fragments_not_a_hang(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    sender = _Background(lambda: Link(left, 0, max_send=6).send_message(1, ECHO))
    reader = Link(right, 0)
    pdvs: list[tuple[int, int, bytes]] = []
    while len(pdvs) <= len(ECHO) and not (pdvs and pdvs[-1][1] & pdu.PDV_LAST):
        _, body = reader.read_pdu()  # bounded: an endless stream of empty PDVs fails below
        pdvs.extend((cid, control, bytes(data)) for cid, control, data in pdu.iter_pdvs(body))
    sender.join()
    assert [len(data) for _, _, data in pdvs] == [1] * len(ECHO)
    assert b"".join(data for _, _, data in pdvs) == ECHO
    assert pdvs[-1][1] == pdu.PDV_COMMAND | pdu.PDV_LAST


# -- limits --------------------------------------------------------------------------------------


def test_a_pdata_pdu_longer_than_max_receive_raises_too_long_without_reading_the_body(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(pdu.header(pdu.P_DATA_TF, 16385) + b"body-bytes")
    with pytest.raises(TooLong):
        Link(right, 16384).read_pdu()
    assert right.recv(100) == b"body-bytes"


def test_a_pdata_pdu_of_exactly_max_receive_is_read(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    body = pdu.pdata_header(1, pdu.PDV_LAST, 16378)[6:] + bytes(16378)
    left.sendall(pdu.header(pdu.P_DATA_TF, len(body)) + body)
    assert Link(right, 16384).read_pdu() == (pdu.P_DATA_TF, memoryview(body))


def test_other_pdus_may_exceed_max_receive_up_to_the_fixed_bound(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    request = pdu.encode_request(pdu.AssociateRequest("A", "B", tuple(
        pdu.ProposedContext(i, "1.2.840.10008.5.1.4.1.1." + "9" * 50, ("1.2.840.10008.1.2",))
        for i in range(1, 256, 2))))
    assert len(request) > 4096
    left.sendall(request)
    pdu_type, body = Link(right, 4096).read_pdu()
    assert pdu_type == pdu.ASSOCIATE_RQ
    assert len(pdu.decode_request(bytes(body)).contexts) == 128
    left.sendall(pdu.header(pdu.ASSOCIATE_RQ, OTHER_PDU_MAX + 1) + b"rest")
    with pytest.raises(TooLong):
        Link(right, 4096).read_pdu()
    assert right.recv(100) == b"rest"


def test_max_receive_0_bounds_pdata_by_the_fixed_bound_only(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(pdu.header(pdu.P_DATA_TF, OTHER_PDU_MAX + 1))
    with pytest.raises(TooLong):
        Link(right, 0).read_pdu()


def test_an_unknown_pdu_type_raises_unexpected_pdu_without_reading_the_body(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(pdu.header(0x09, 4) + b"body")
    with pytest.raises(UnexpectedPdu) as caught:
        Link(right, 0).read_pdu()
    assert caught.value.pdu_type == 0x09
    assert right.recv(100) == b"body"


# -- how a read ends -----------------------------------------------------------------------------


def test_release_request_between_messages_raises_release(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    sender = Link(left, 0)
    sender.send_message(1, ECHO)
    sender.send(pdu.release_rq())
    reader = Link(right, 0)
    assert reader.read_message().command == dimse.decode(ECHO)
    with pytest.raises(Release):
        reader.read_message()


def test_release_request_inside_a_message_raises_unexpected_pdu(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(_pdata((1, pdu.PDV_COMMAND | pdu.PDV_LAST, COMMAND)) + pdu.release_rq())
    with pytest.raises(UnexpectedPdu) as caught:
        Link(right, 0).read_message()
    assert caught.value.pdu_type == pdu.RELEASE_RQ


@pytest.mark.parametrize("before", [b"", _pdata((1, pdu.PDV_COMMAND, COMMAND[:20]))],
                         ids=["between messages", "inside a message"])
def test_abort_raises_aborted(pair: tuple[socket.socket, socket.socket], before: bytes) -> None:
    left, right = pair
    left.sendall(before + pdu.abort(pdu.ABORT_SOURCE_PROVIDER, pdu.ABORT_UNEXPECTED_PDU))
    with pytest.raises(Aborted):
        Link(right, 0).read_message()


def test_an_associate_request_mid_association_raises_unexpected_pdu(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(pdu.encode_request(pdu.AssociateRequest("A", "B", ())))
    with pytest.raises(UnexpectedPdu):
        Link(right, 0).read_message()


@pytest.mark.parametrize("sent", [b"", b"\x04\x00\x00", pdu.header(pdu.P_DATA_TF, 100) + b"x",
                                  _pdata((1, pdu.PDV_COMMAND, COMMAND[:20]))],
                         ids=["nothing", "half a header", "half a body", "half a message"])
def test_end_of_connection_raises_closed(pair: tuple[socket.socket, socket.socket],
                                         sent: bytes) -> None:
    left, right = pair
    left.sendall(sent)
    left.shutdown(socket.SHUT_WR)
    with pytest.raises(Closed):
        Link(right, 0).read_message()


def test_close_lets_the_peer_see_the_end(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    Link(left, 0).close()
    with pytest.raises(Closed):
        Link(right, 0).read_pdu()


def test_a_data_fragment_before_its_command_raises_pdu_error(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(_pdata((1, pdu.PDV_LAST, b"data")))
    with pytest.raises(pdu.PduError):
        Link(right, 0).read_message()


def test_a_message_over_two_contexts_raises_pdu_error(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(_pdata((1, pdu.PDV_COMMAND | pdu.PDV_LAST, COMMAND), (3, pdu.PDV_LAST, b"d")))
    with pytest.raises(pdu.PduError):
        Link(right, 0).read_message()


def test_a_command_fragment_after_the_complete_command_raises_pdu_error(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(_pdata((1, pdu.PDV_COMMAND | pdu.PDV_LAST, COMMAND),
                        (1, pdu.PDV_COMMAND | pdu.PDV_LAST, ECHO)))
    with pytest.raises(pdu.PduError):
        Link(right, 0).read_message()


def test_an_unreadable_command_raises_pdu_error_like_any_malformed_pdu(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(_pdata((1, pdu.PDV_COMMAND | pdu.PDV_LAST, b"\x00\x00\x00")))
    with pytest.raises(pdu.PduError) as caught:
        Link(right, 0).read_message()
    assert isinstance(caught.value.__cause__, dimse.DimseError)


# -- PDVs after the end of a message -------------------------------------------------------------

SECOND_STORE = dimse.encode({
    dimse.AFFECTED_SOP_CLASS: "1.2.840.10008.5.1.4.1.1.4",
    dimse.COMMAND_FIELD: dimse.C_STORE_RQ,
    dimse.MESSAGE_ID: 7,
    dimse.PRIORITY: 0,
    dimse.DATASET_TYPE: dimse.HAS_DATASET,
    dimse.AFFECTED_SOP_INSTANCE: "1.2.3.5",
})


@pytest.mark.parametrize("message_2_ends_in_that_pdu", [True, False],
                         ids=["message 2 whole in that PDU", "message 2 continues after it"])
def test_pdvs_after_the_end_of_a_message_in_its_last_pdu_start_the_next_message(
        pair: tuple[socket.socket, socket.socket], message_2_ends_in_that_pdu: bool) -> None:
    left, right = pair
    first_pdu = _pdata((1, pdu.PDV_COMMAND | pdu.PDV_LAST, COMMAND), (1, 0, b"message-1:"))
    if message_2_ends_in_that_pdu:
        shared = _pdata((1, pdu.PDV_LAST, b"end"),
                        (3, pdu.PDV_COMMAND | pdu.PDV_LAST, SECOND_STORE),
                        (3, pdu.PDV_LAST, b"message-2"))
        after = b""
    else:
        shared = _pdata((1, pdu.PDV_LAST, b"end"),
                        (3, pdu.PDV_COMMAND, SECOND_STORE[:12]),
                        (3, pdu.PDV_COMMAND | pdu.PDV_LAST, SECOND_STORE[12:]),
                        (3, 0, b"message-"))
        after = _pdata((3, pdu.PDV_LAST, b"2"))
    left.sendall(first_pdu + shared + after)
    left.shutdown(socket.SHUT_WR)  # a read past these PDUs raises Closed
    reader = Link(right, 0)
    first = reader.read_message()
    assert (first.context_id, first.command) == (1, dimse.decode(COMMAND))
    assert first.dataset() == b"message-1:end"
    second = reader.read_message()
    assert (second.context_id, second.command) == (3, dimse.decode(SECOND_STORE))
    assert second.dataset() == b"message-2"
    with pytest.raises(Closed):
        reader.read_message()


def test_two_complete_commands_in_one_pdu_are_two_messages(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    echo_3 = dimse.encode({dimse.COMMAND_FIELD: dimse.C_ECHO_RQ, dimse.MESSAGE_ID: 3,
                           dimse.DATASET_TYPE: dimse.NO_DATASET})
    left.sendall(_pdata((1, pdu.PDV_COMMAND | pdu.PDV_LAST, ECHO),
                        (5, pdu.PDV_COMMAND | pdu.PDV_LAST, echo_3)))
    left.shutdown(socket.SHUT_WR)  # both messages come from the one PDU already read
    reader = Link(right, 0)
    first, second = reader.read_message(), reader.read_message()
    assert (first.context_id, first.command, first.fragments) == (1, dimse.decode(ECHO), None)
    assert (second.context_id, second.command, second.fragments) == (5, dimse.decode(echo_3),
                                                                     None)
    assert dimse.number(second.command, dimse.MESSAGE_ID) == 3
    with pytest.raises(Closed):
        reader.read_message()


@pytest.mark.parametrize("seconds", [0.2, 1.0])
def test_a_silent_peer_is_a_timeout_after_the_time_set_and_the_socket_stays_blocking(
    pair: tuple[socket.socket, socket.socket], seconds: float
) -> None:
    left, _right = pair
    link = Link(left, 1 << 20)
    link.set_timeout(seconds)
    assert left.gettimeout() is None  # the kernel keeps the time: no poll() per read

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        link.read_pdu()
    assert seconds * 0.9 <= time.monotonic() - started < seconds + 1.0


def test_a_body_arriving_in_pieces_is_read_whole(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    link = Link(left, 1 << 20)
    link.set_timeout(5.0)
    body = bytes(range(256)) * 40
    pdu_bytes = pdu.header(pdu.RELEASE_RQ, len(body)) + body

    def trickle() -> None:
        for start in range(0, len(pdu_bytes), 1000):
            right.sendall(pdu_bytes[start:start + 1000])

    sender = threading.Thread(target=trickle)
    sender.start()
    pdu_type, read = link.read_pdu()
    sender.join()
    assert pdu_type == pdu.RELEASE_RQ and bytes(read) == body


def test_set_timeout_refuses_zero_which_the_kernel_reads_as_no_limit(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    with pytest.raises(ValueError):
        Link(pair[0], 1 << 20).set_timeout(0)


def test_a_message_over_max_message_is_read_through_and_none_of_it_is_kept(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    sender = _Background(lambda: Link(left, 0, 4096).send_message(1, COMMAND, [MEGABYTE]))
    link = Link(right, 4096, max_message=100_000)
    message = link.read_message()
    sender.join()
    assert message.oversized and message.fragments == ()
    assert message.command == dimse.decode(COMMAND)  # the command is kept: it is answered
    sender = _Background(lambda: Link(left, 0, 4096).send_message(1, ECHO))
    assert link.read_message().command == dimse.decode(ECHO)  # the link goes on
    sender.join()


def test_idle_waits_between_pdus_do_not_shorten_the_read_limit(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """The PDU deadline starts at a PDU's first byte and leaves the per-read limit as set:
    a link idle for most of its limit, again and again, keeps the whole limit each time."""
    left, right = pair
    right.settimeout(None)
    link = Link(right, 4096)
    link.set_timeout(2.0)
    link.pdu_deadline = 2.0
    for idle in (1.3, 1.6, 1.6):
        sender = _Background(lambda idle=idle: (time.sleep(idle),
                                                left.sendall(pdu.release_rq())))
        assert link.read_pdu()[0] == pdu.RELEASE_RQ
        sender.join()


def test_a_pdu_trickled_after_its_first_byte_is_cut_at_its_deadline(
        pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    right.settimeout(None)
    link = Link(right, 4096)
    link.set_timeout(5.0)
    link.pdu_deadline = 1.0
    raw = pdu.release_rq()

    def trickle() -> None:
        for byte in raw:
            left.sendall(bytes([byte]))
            time.sleep(0.3)

    sender = _Background(trickle)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        link.read_pdu()
    assert time.monotonic() - started < 2.0  # the deadline (1 s and its slack), not 5 s
    sender.join()


def test_a_connection_the_listener_closed_while_it_was_being_served_ends_quietly(
        caplog: pytest.LogCaptureFixture) -> None:
    """`stop` aborts the links of associations being served; a thread that was between two
    reads then meets a closed socket: the end of that association, not an error."""
    from runner.dicom.ul.acceptor import Acceptor, AcceptorPolicy, Handlers

    acceptor = Acceptor(AcceptorPolicy("LISTENER", frozenset({"A"}), {}),
                        Handlers(lambda _r: (0, ""), lambda _r: (0, "")), "127.0.0.1", 0)
    acceptor.stop()
    ours, theirs = socket.socketpair()
    ours.close()  # what stop did to it
    acceptor._serve(ours, ("127.0.0.1", 1))  # no exception left to the thread
    theirs.close()
    assert "failed" not in caplog.text  # the listener stopping is no failure to report
