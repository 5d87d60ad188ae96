"""The keep-alive pool of :mod:`crossroads.dispatch.rawhttp`: prebuilt request heads,
``fetch`` (whole body) and ``open`` (streamed body), at most ``max_connections``."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any

from crossroads.dispatch.rawhttp.connection import Connection, Headers
from crossroads.exceptions import UpstreamConnectError, UpstreamTimeoutError


class StreamResponse:
    """A response whose body arrives as chunks: ``async for chunk in response``.

    Always ``close()`` it: the connection goes back to the pool only if the body was read
    to the end (or, with ``reuse=True``, finishes within ``DRAIN_GRACE_S``)."""

    __slots__ = ("_conn", "_pool", "headers", "status")

    def __init__(self, pool: ConnectionPool, conn: Connection) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self.status = conn.status
        self.headers = Headers(conn.raw_headers)

    def __aiter__(self) -> StreamResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        while True:
            if conn.chunks:
                return conn.take()
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                raise StopAsyncIteration
            await conn.wait()

    async def read(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in self])

    def close(self, reuse: bool = False) -> None:
        """Release the connection: to the pool if the response ended cleanly, or (``reuse``:
        the caller saw the end of its content) once the message finishes; else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.error is None and (conn.complete or (reuse and conn.drain())):
            self._pool.release(conn)
        elif conn.error is not None or not reuse:
            self._pool.discard(conn)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one ``host:port``; see the module docstring.

    Create it inside the running event loop; it is bound to that loop."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        name: str,
        timeouts: Any,
        max_connections: int = 100,
        max_response_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.host, self.port, self.name = host, port, name
        self.timeouts = timeouts  # connect, first_byte, read, total (crossroads.config.Timeouts)
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes  # a body, or a stream's error body
        self.loop = asyncio.get_running_loop()
        self._idle: list[Connection] = []
        self._open = 0  # connections open or opening
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._closed = False

    def request_head(self, method: str, target: str, headers: Mapping[str, str]) -> bytes:
        """The request head up to the content-length value; built once, reused per call."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        lines = [f"{method} {target} HTTP/1.1", f"host: {host}:{self.port}"]
        for key, value in headers.items():
            if key.lower() in ("host", "content-length", "transfer-encoding", "connection"):
                continue
            if any(c in key + value for c in "\r\n\0"):
                raise ValueError(f"header {key!r} of upstream {self.name!r} contains CR/LF/NUL")
            lines.append(f"{key}: {value}")
        return ("\r\n".join(lines) + "\r\ncontent-length: ").encode("utf-8")

    @property
    def idle_connections(self) -> int:
        """Idle pooled connections."""
        return len(self._idle)

    @property
    def open_connections(self) -> int:
        """Open (or opening) connections, idle or busy."""
        return self._open

    async def fetch(
        self, head: bytes, body: bytes, within: float | None = None
    ) -> tuple[int, Headers, bytes]:
        """Send one request and read the whole response: ``(status, headers, body)``; with
        ``within`` (seconds) shorter than ``timeouts.total``, it must end within that."""
        conn = await self._exchange(b"%b%d\r\n\r\n%b" % (head, len(body), body), False, within)
        chunks = conn.chunks
        result = (
            conn.status,
            Headers(conn.raw_headers),
            chunks[0] if len(chunks) == 1 else b"".join(chunks),
        )
        self.release(conn)
        return result

    async def open(self, head: bytes, body: bytes) -> StreamResponse:
        """Send one request and return once the response head arrived; read its body by
        iterating the :class:`StreamResponse`, then ``close()`` it."""
        conn = await self._exchange(b"%b%d\r\n\r\n%b" % (head, len(body), body), True)
        return StreamResponse(self, conn)

    async def _exchange(
        self, request: bytes, stream: bool, within: float | None = None
    ) -> Connection:
        now = self.loop.time()
        total_at = now + self.timeouts.total
        is_deadline = within is not None and within < self.timeouts.total
        if is_deadline:
            total_at = now + within  # type: ignore[operator]
        idle = self._idle
        conn = idle.pop() if idle else None  # a warm connection: no coroutine to get it
        if conn is None or conn.closed:
            conn = await self._acquire(total_at, fresh=False)
        try:
            await conn.begin(request, stream, total_at, is_deadline)
            if conn.error is not None and conn.stale:  # closed while we sent: once more
                conn = await self._acquire(total_at, fresh=True)
                await conn.begin(request, stream, total_at, is_deadline)
        except BaseException:
            self.discard(conn)
            raise
        if conn.error is not None:
            self.discard(conn)
            raise conn.error
        return conn

    # ---------------------------------------------------------------- the pool

    async def _acquire(self, total_at: float, fresh: bool) -> Connection:
        idle = self._idle
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed:
                return conn
        if self._closed:
            raise UpstreamConnectError(f"upstream {self.name!r}: client closed", upstream=self.name)
        connect_at = min(self.loop.time() + self.timeouts.connect, total_at)
        try:
            async with asyncio.timeout_at(connect_at):
                return await self._wait_or_connect(fresh)
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"could not connect to upstream {self.name!r} within timeouts.connect "
                f"({self.timeouts.connect:g} s; {self._open} of max_connections="
                f"{self.max_connections} open)",
                upstream=self.name,
            ) from None

    async def _wait_or_connect(self, fresh: bool) -> Connection:
        while True:
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
            if self._open < self.max_connections:
                return await self._connect()
            waiter: asyncio.Future[Connection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                conn_or_slot = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()  # given to us as we were cancelled: pass it on
                    if handed is not None:
                        self.release(handed)
                    else:
                        self._notify_slot()
                else:
                    waiter.cancel()
                raise
            if conn_or_slot is not None:
                if not conn_or_slot.closed:
                    return conn_or_slot
                conn_or_slot.in_use = False

    async def _connect(self) -> Connection:
        self._open += 1
        conn = Connection(self)  # owns the slot from here: freed once, when it is lost
        try:
            await self.loop.create_connection(lambda: conn, self.host, self.port)
        except OSError as exc:
            self.free_slot(conn)
            raise UpstreamConnectError(
                f"could not connect to upstream {self.name!r} at {self.host}:{self.port}: {exc}",
                upstream=self.name,
            ) from exc
        except BaseException:
            self.free_slot(conn)
            raise
        return conn

    def release(self, conn: Connection) -> None:
        conn.in_use = False
        conn.reused = True
        if conn.closed or self._closed or not conn.keep_alive:
            self.discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                conn.in_use = True
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def discard(self, conn: Connection) -> None:
        conn.in_use = False
        conn._cancel_timer()
        if not conn.closed and conn.transport is not None:
            conn.transport.abort()  # connection_lost frees the slot

    def free_slot(self, conn: Connection) -> None:
        if not conn.counted:
            return
        conn.counted = False
        self._open -= 1
        if conn in self._idle:
            self._idle.remove(conn)
        self._notify_slot()

    def _notify_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close idle connections now and busy ones when released; fail waiting calls."""
        self._closed = True
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(
                    UpstreamConnectError(
                        f"upstream {self.name!r}: client closed", upstream=self.name
                    )
                )
        await asyncio.sleep(0)  # let connection_lost run
