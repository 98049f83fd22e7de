"""Sending a data set as P-DATA-TF PDUs over loopback TCP: one `sendmsg` per PDU (the
baseline) against `Link.send_message` (every PDU of a message in as few `sendmsg` as the
kernel allows), the sender's CPU per GB side by side in the same run; a child process drains
the socket as a peer would.

    .venv/bin/python benchmarks/pdu_send.py [--instances 1200] [--pdu 16384] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import socket
import statistics
import time
from collections.abc import Callable

from runner.dicom.ul import pdu
from runner.dicom.ul.link import Link, _advance

INSTANCE = 512 * 1024  # a CT slice


def drain(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray(1 << 20)
        while sock.recv_into(buffer):
            pass


def per_pdu(link: Link, data: memoryview, chunk: int) -> None:
    """The baseline: each PDU its own sendmsg."""
    for offset in range(0, len(data), chunk):
        piece = data[offset: offset + chunk]
        last = pdu.PDV_LAST if offset + chunk >= len(data) else 0
        head = pdu.pdata_header(1, last, len(piece))
        pending: list[bytes | bytearray | memoryview] = [head, piece]
        while pending:
            pending = _advance(pending, link.sock.sendmsg(pending))


def whole(link: Link, data: memoryview, _chunk: int) -> None:
    link._send_stream(1, [data], 0)


def cpu_per_gb(send: Callable[[Link, memoryview, int], None], instances: int,
               max_pdu: int) -> float:
    server = socket.create_server(("127.0.0.1", 0))
    child = multiprocessing.Process(target=drain, args=(server.getsockname()[1],))
    child.start()
    sock, _ = server.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    link = Link(sock, max_receive=max_pdu, max_send=max_pdu)
    data = memoryview(os.urandom(INSTANCE))
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(instances):
        send(link, data, max_pdu - 6)
    after = resource.getrusage(resource.RUSAGE_SELF)
    sock.close()
    server.close()
    child.join()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / (instances * INSTANCE / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1200)
    parser.add_argument("--pdu", type=int, default=16384, help="the peer's maximum PDU")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"per PDU (baseline)": [], "one sendmsg": []}
    for _ in range(args.rounds):
        for name, send in (("per PDU (baseline)", per_pdu), ("one sendmsg", whole)):
            results[name].append(cpu_per_gb(send, args.instances, args.pdu))
            time.sleep(0.2)
    base = statistics.median(results["per PDU (baseline)"])
    for name, values in results.items():
        value = statistics.median(values)
        print(f"{name:20} {value:6.3f} CPU s per GB  ({value / base:.2f} of the baseline)")


if __name__ == "__main__":
    main()
