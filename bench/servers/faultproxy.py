"""A loopback TCP proxy that injects transport faults into responses, switchable at run time.

Put between Iceshelf and its object store (``AWS_ENDPOINT_URL`` = ``proxy.url``), it forwards bytes
both ways unchanged until a test arms a fault; the next ``times`` responses that reach the fault's
point then suffer it:

* ``cut(after)``: the response is cut off after ``after`` bytes (the connection closed mid-body);
* ``reset()``: the connection is reset (TCP RST) as the response starts;
* ``stall(seconds)``: the response stops flowing for ``seconds`` (longer than a read timeout).

``skip`` lets that many eligible responses pass first, so a test can sweep a fault over every
request of an operation. A "response" is what the upstream sends after the client last sent
something: S3 clients do not pipeline, so that is one HTTP response. ``retarget`` points the proxy
at a restarted upstream (a new port), so the proxy is also the stable endpoint of a store that is
killed and restarted. Requests always reach the upstream: a fault on a write's
response is the case where the write landed but its caller cannot know. Pure asyncio, in a thread
of its own, so tests drive it from ordinary synchronous code.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["cut", "reset", "stall"]


@dataclass
class _Armed:
    kind: Kind
    times: int | None  # None: every response until ``heal``
    after: int = 0
    seconds: float = 0.0
    skip: int = 0


class FaultProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._armed: _Armed | None = None
        self._lock = threading.Lock()
        #: Faults injected so far, by kind.
        self.injected: dict[str, int] = {"cut": 0, "reset": 0, "stall": 0}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        #: Open connections: held here, since asyncio keeps only weak references to running tasks.
        self._connections: set[asyncio.Task] = set()
        self.url = ""

    # -- control ------------------------------------------------------------------------------

    def cut(self, after: int, times: int | None = 1, skip: int = 0) -> None:
        self._arm(_Armed("cut", times, after=after, skip=skip))

    def reset(self, times: int | None = 1, skip: int = 0) -> None:
        self._arm(_Armed("reset", times, skip=skip))

    def stall(self, seconds: float, times: int | None = 1, skip: int = 0) -> None:
        self._arm(_Armed("stall", times, seconds=seconds, skip=skip))

    def retarget(self, upstream_url: str) -> None:
        """New connections go to ``upstream_url``; open ones stay where they are."""
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)

    def heal(self) -> None:
        self._arm(None)

    def _arm(self, armed: _Armed | None) -> None:
        with self._lock:
            self._armed = armed

    def _take(self, start: int, end: int) -> _Armed | None:
        """The armed fault, if the response's bytes ``start:end`` (just received) should suffer it now.

        A cut is due in the chunk that crosses its byte offset, a reset or stall in a response's first chunk.
        """
        with self._lock:
            armed = self._armed
            if armed is None or not (start <= armed.after < end if armed.kind == "cut" else start == 0):
                return None
            if armed.skip > 0:
                armed.skip -= 1
                return None
            if armed.times is not None:
                armed.times -= 1
                if armed.times <= 0:
                    self._armed = None
            self.injected[armed.kind] += 1
            return armed

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "FaultProxy":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop
        ).result(10)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.run_until_complete(_cancel_all())
        self._loop.close()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- forwarding ---------------------------------------------------------------------------

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._forward(client_reader, client_writer)
        finally:
            self._connections.discard(task)

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            _abort(client_writer)
            return
        response = [0]  # bytes of the current response so far; a request starts a new one

        async def requests() -> None:
            while data := await client_reader.read(65536):
                response[0] = 0
                upstream_writer.write(data)
                await upstream_writer.drain()
            upstream_writer.write_eof() if upstream_writer.can_write_eof() else None

        async def responses() -> None:
            while data := await upstream_reader.read(65536):
                start = response[0]
                response[0] += len(data)
                fault = self._take(start, response[0])
                if fault is not None and fault.kind == "cut":
                    client_writer.write(data[: max(0, fault.after - start)])
                    await client_writer.drain()
                    raise _Dropped
                if fault is not None and fault.kind == "reset":
                    raise _Dropped
                if fault is not None:
                    await asyncio.sleep(fault.seconds)
                client_writer.write(data)
                await client_writer.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            dropped = any(t.exception() is not None for t in done if not t.cancelled())
            if not dropped:  # one side finished cleanly: let the other finish too
                await asyncio.wait(tasks)
        except asyncio.CancelledError:
            dropped = True
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                if not task.done():
                    continue
                if not task.cancelled():
                    task.exception()  # retrieved: no "never retrieved" warning
        if dropped:
            _abort(client_writer)
            _abort(upstream_writer)
        else:
            client_writer.close()
            upstream_writer.close()


async def _cancel_all() -> None:
    """Cancel and wait for every connection still open, so none is destroyed pending."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class _Dropped(Exception):
    """The proxy dropped this connection on purpose."""


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (linger 0), not a polite FIN: what a crashed peer or a middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
