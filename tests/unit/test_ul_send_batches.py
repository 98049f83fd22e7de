"""The upper layer sends a message's PDUs in as few `sendmsg` calls as the kernel allows,
each PDU intact, whatever the kernel takes of each call."""

from __future__ import annotations

import socket

import pytest

from runner.dicom.ul import link as link_module
from runner.dicom.ul import pdu
from runner.dicom.ul.link import Link, _advance


class Kernel:
    """A socket that takes at most `take` bytes of each sendmsg, and counts the calls."""

    def __init__(self, take: int) -> None:
        self.take = take
        self.calls: list[int] = []  # buffers given to each call
        self.wire = bytearray()

    def sendmsg(self, buffers: list[bytes | memoryview]) -> int:
        self.calls.append(len(buffers))
        data = b"".join(bytes(b) for b in buffers)[: self.take]
        self.wire += data
        return len(data)


def link_on(kernel: Kernel, max_send: int) -> Link:
    link = Link(socket.socket(), max_receive=1 << 16, max_send=max_send)
    link.sock.close()
    link.sock = kernel  # type: ignore[assignment]
    return link


def pdus(wire: bytes) -> list[tuple[int, int, bytes]]:
    """(context, control, data) of each P-DATA-TF on the wire."""
    out, at = [], 0
    while at < len(wire):
        assert wire[at] == pdu.P_DATA_TF
        length = int.from_bytes(wire[at + 2: at + 6], "big")
        body = memoryview(wire)[at + 6: at + 6 + length]
        out += [(c, h, bytes(d)) for c, h, d in pdu.iter_pdvs(body)]
        at += 6 + length
    return out


def test_a_data_set_goes_in_one_call_as_pdus_of_the_peers_size() -> None:
    kernel = Kernel(take=1 << 30)
    data = bytes(range(256)) * 400  # 102,400 bytes in PDUs of 16 KB
    link_on(kernel, 16384)._send_stream(3, [data], 0)
    assert kernel.calls == [2 * 7]  # seven PDUs: headers and fragment each, one call
    sent = pdus(bytes(kernel.wire))
    assert b"".join(d for _, _, d in sent) == data
    assert [h & pdu.PDV_LAST for _, h, _ in sent] == [0] * 6 + [pdu.PDV_LAST]
    assert all(c == 3 and len(d) <= 16384 - 6 for c, _, d in sent)


def test_what_the_kernel_did_not_take_is_sent_again_from_where_it_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_module, "_IOV_MAX", 4)  # two PDUs a call at most
    kernel = Kernel(take=5000)  # and a part of one each time
    data = bytes(range(251)) * 200
    link_on(kernel, 4096)._send_stream(1, [data[:20000], data[20000:]], 0)
    assert max(kernel.calls) <= 4 and len(kernel.calls) > 10
    assert b"".join(d for _, _, d in pdus(bytes(kernel.wire))) == data


def test_advance_drops_whole_parts_and_cuts_into_the_next() -> None:
    parts: list[bytes | bytearray | memoryview] = [b"abc", b"de", b"fghij"]
    assert [bytes(p) for p in _advance(parts, 0)] == [b"abc", b"de", b"fghij"]
    assert [bytes(p) for p in _advance(parts, 3)] == [b"de", b"fghij"]
    assert [bytes(p) for p in _advance(parts, 6)] == [b"ghij"]
    assert _advance(parts, 10) == []
