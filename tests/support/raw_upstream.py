"""A loopback HTTP server whose every byte a test writes by hand, and canned upstreams that
misbehave at the socket level (floods, bombs, leftovers, endless 1xx, redirects).

    async with Script(handler) as script:          # handler(conn) per accepted connection
        pool = ConnectionPool("127.0.0.1", script.port, ...)

Each misbehaviour below is a handler: ``Script(header_flood(100_000))``. They answer the
first request of a connection badly and then stay silent; ``Script.seen`` keeps the
heads of every request, so a test can check what reached the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[["Conn"], Awaitable[None]]
OK_JSON = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}'


class Conn:
    """One accepted connection of a :class:`Script` server."""

    def __init__(self, script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.script, self.reader, self.writer = script, reader, writer

    async def request(self) -> tuple[bytes, bytes] | None:
        """The next request's head and body, or None when the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        self.script.seen.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return head, await self.reader.readexactly(length)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, body: bytes, status: int = 200, extra: bytes = b"") -> None:
        await self.send(
            b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)
        )


class Script:
    """A loopback HTTP server: ``handler(conn)`` runs once per accepted connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.seen: list[bytes] = []  # every request head, in order
        self.closed_by_client = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def requests(self) -> int:
        return len(self.seen)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self.handler(Conn(self, reader, writer))
            # wait for the client to leave, so tests see its close
            if not writer.is_closing():
                await asyncio.wait_for(reader.read(), 5)
                self.closed_by_client.set()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            self.closed_by_client.set()
        except asyncio.CancelledError:  # the test is over; end quietly
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Script:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def echo_forever(conn: Conn) -> None:
    """Answer every request with its own body (content-length)."""
    while (req := await conn.request()) is not None:
        await conn.answer(req[1])


async def _send_quietly(conn: Conn, data: bytes) -> None:
    """Write until the client hangs up (it is expected to)."""
    with contextlib.suppress(ConnectionError):
        await conn.send(data)


# ---------------------------------------------------------------- misbehaviours


def header_flood(count: int, then_echo: bool = False) -> Handler:
    """``count`` small headers in one response head (a head of ~20 bytes per header)."""

    async def handler(conn: Conn) -> None:
        await conn.request()
        head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
        await _send_quietly(conn, head + _headers(count) + b"\r\nok")
        if then_echo:
            await echo_forever(conn)

    return handler


def _headers(count: int) -> bytes:
    return b"".join(b"x-h%d: v\r\n" % i for i in range(count))


def huge_header(size: int, piece: int = 16 * 1024) -> Handler:
    """One header whose value is ``size`` bytes, written ``piece`` bytes at a time."""

    async def handler(conn: Conn) -> None:
        await conn.request()
        await _send_quietly(conn, b"HTTP/1.1 200 OK\r\nx-big: ")
        for _ in range(0, size, piece):
            await _send_quietly(conn, b"a" * piece)
        await _send_quietly(conn, b"\r\ncontent-length: 2\r\n\r\nok")

    return handler


def huge_body(size: int, chunked: bool = False, piece: int = 64 * 1024) -> Handler:
    """A 200 whose body is ``size`` bytes: declared by content-length, or chunked (as much as
    the client reads: a chunked answer stops once the client leaves)."""

    async def handler(conn: Conn) -> None:
        await conn.request()
        if not chunked:
            await _send_quietly(conn, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n{" % size)
            await asyncio.sleep(10)  # the client must fail on the head, not wait for the body
            return
        await _send_quietly(conn, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        block = b"%x\r\n%s\r\n" % (piece, b" " * piece)
        for _ in range(0, size, piece):
            if conn.writer.is_closing():
                return
            await _send_quietly(conn, block)
        await _send_quietly(conn, b"0\r\n\r\n")

    return handler


def gzip_bomb(size: int, encoding: bytes = b"gzip") -> Handler:
    """A 200 whose ``content-encoding`` body is small compressed and ``size`` bytes inflated
    (zeros): sent although the request asked for no compression."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == b"gzip" else 15)
    block = bytes(1024 * 1024)
    body = b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()

    async def handler(conn: Conn) -> None:
        await conn.request()
        await _send_quietly(
            conn,
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: %s\r\n"
            b"content-length: %d\r\n\r\n%s" % (encoding, len(body), body),
        )

    return handler


def leftovers() -> Handler:
    """On the server's first connection, answers the first request with its body and, in
    the same write, a second (bogus, unfinished) response nobody asked for; every other
    request is echoed."""

    async def handler(conn: Conn) -> None:
        if conn.script.connections > 1:
            return await echo_forever(conn)
        req = await conn.request()
        if req is None:
            return
        bogus = b'{"choices": [{"index": 0, "message": {"content": "leftover"}}]}'
        await _send_quietly(
            conn,
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(req[1]), req[1])
            + b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(bogus) + 20, bogus),
        )
        await echo_forever(conn)

    return handler


def endless_informational(status: int = 100, pause_s: float = 0.001) -> Handler:
    """``HTTP/1.1 100 Continue`` (or ``103``) heads, one after the other, for ever."""

    async def handler(conn: Conn) -> None:
        await conn.request()
        while not conn.writer.is_closing():
            await _send_quietly(conn, b"HTTP/1.1 %d Info\r\n\r\n" % status)
            await asyncio.sleep(pause_s)

    return handler


def redirect_to(location: str, status: int = 307) -> Handler:
    """Every request answered by a redirect to ``location`` (with a JSON body that would
    pass for a completion)."""

    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.answer(OK_JSON, status, b"location: %s\r\n" % location.encode())

    return handler


async def endless_event(conn: Conn) -> None:
    """A 200 event stream whose first event never ends: ``data:`` lines, no blank line."""
    await conn.request()
    await _send_quietly(
        conn,
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    line = b"data: " + b"x" * 1017 + b"\n"
    block = b"%x\r\n%s\r\n" % (len(line) * 16, line * 16)
    while not conn.writer.is_closing():
        await _send_quietly(conn, block)


def completions(conn: Conn) -> Awaitable[None]:
    """A well-behaved upstream: every request answered with a small completion."""

    async def handler() -> None:
        while await conn.request() is not None:
            await conn.answer(OK_JSON, extra=b"content-type: application/json\r\n")

    return handler()
