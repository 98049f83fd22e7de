"""The HL7 v2 listener of the priority lane: MLLP over TCP (or TLS), python-hl7's framing.

An asyncio loop on a thread of its own serves any number of connections, each any number of
messages in turn. Each message is read into a request (runner.execute.priority.hl7_messages)
and handed to `accept` (the lane's `submit`: it keeps the request, committed to the ledger)
on a worker thread, so that a slow commit holds up no other connection; the answer is AA
once it is kept, AE or AR with the reason otherwise. Patient data is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from hl7.mllp import InvalidBlockError, start_hl7_server

from runner.execute.priority.hl7_messages import MessageRefused, ack, request_of
from runner.plan.priority import PriorityRequest

log = logging.getLogger(__name__)

MAX_MESSAGE = 1 << 20  # bytes: a larger block is answered AR and the connection closed
Accept = Callable[[PriorityRequest], object]


class Hl7Listener:
    """MLLP on `host:port` (0: a free port, `port` tells which) until `stop`."""

    def __init__(self, host: str, port: int, accept: Accept,
                 tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.accept, self.tls = host, port, accept, tls
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.answered: dict[str, int] = {"AA": 0, "AE": 0, "AR": 0}

    def start(self) -> Hl7Listener:
        """Listen (OSError if the port cannot be bound); returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(start_hl7_server(
                    self._connected, self.host, self.port, ssl=self.tls, limit=MAX_MESSAGE))
            except BaseException as exc:  # handed to the caller of start
                failure.append(exc)
                ready.set()
                return
            self.port = int(self._server.sockets[0].getsockname()[1])
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="hl7-listener", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._thread is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 2.0)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._thread = None

    async def _connected(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    block = await reader.readblock()  # type: ignore[attr-defined]
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the sender closed the connection
                except (InvalidBlockError, ValueError) as exc:
                    writer.writeblock(ack("", "AR", f"not an MLLP block: {exc}")  # type: ignore[attr-defined]
                                      .encode("utf-8"))
                    await writer.drain()
                    return
                answer = await self._answer(_decoded(block))
                writer.writeblock(answer.encode("utf-8"))  # type: ignore[attr-defined]
                await writer.drain()
        finally:
            writer.close()

    async def _answer(self, text: str) -> str:
        try:
            request = request_of(text, datetime.now(UTC))
            await asyncio.get_running_loop().run_in_executor(None, self.accept, request)
        except MessageRefused as refused:
            return self._counted(ack(text, refused.code, refused.reason), refused.code)
        except ValueError as refused:  # the lane's refusal (runner.execute.priority.lane)
            return self._counted(ack(text, "AE", str(refused)), "AE")
        except Exception as exc:  # a request that could not be kept: the sender retries
            log.warning("HL7 message not kept: %s", type(exc).__name__)
            return self._counted(ack(text, "AE", "the request could not be kept; send it "
                                     "again"), "AE")
        return self._counted(ack(text, "AA"), "AA")

    def _counted(self, answer: str, code: str) -> str:
        self.answered[code] = self.answered.get(code, 0) + 1
        return answer


def _decoded(block: bytes) -> str:
    """The message's text: UTF-8, else Latin-1 (HL7's common 8-bit set)."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("latin-1")
