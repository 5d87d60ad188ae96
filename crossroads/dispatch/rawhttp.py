"""A pooled HTTP/1.1 client for plain-``http://`` upstreams: an asyncio ``Protocol`` whose
responses httptools parses, at about a quarter of aiohttp's CPU per call (bench/RESULTS.md,
"Upstream HTTP client"). aiohttp stays for ``https://`` and anything unusual.

    pool = ConnectionPool("127.0.0.1", 8000, name="vllm", timeouts=Timeouts())
    head = pool.request_head("POST", "/v1/chat/completions", {"content-type": "application/json"})
    status, headers, body = await pool.fetch(head, payload)        # the whole body
    response = await pool.open(head, payload)                      # body chunks as they arrive
    try:
        async for chunk in response:
            ...
    finally:
        response.close(reuse=True)

What it does, and why:

* Keep-alive connections, at most ``max_connections`` per pool; a call at the limit waits
  for a free one. Waiting and connecting together are bounded by ``timeouts.connect``
  (aiohttp's meaning of it). A connection goes back to the pool only when its response was
  read to the end and keep-alive holds; anything else, a cancelled call included, closes it.
* One timer per call: a single ``loop.call_at`` handle for the nearest of the phase deadline
  (``first_byte`` from the send until the status line, or for streams until the first body
  byte; then ``read``, the longest silence between body chunks) and ``total``. Body chunks
  only note the time; the handle re-arms itself when it wakes early, so a fast call costs
  one ``call_at`` and one ``cancel``.
* Streams pause reading once more than ``HIGH_WATER`` bytes wait for a slow consumer, and
  resume when it takes them; ``read`` does not run while paused.
* Stale connections: a pooled connection the server closed while idle is dropped when its
  close arrives. If the close races the request (the connection was reused, and it closed
  or reset before any response byte), the request is sent once more on a new connection.
  For a POST this is what browsers and aiohttp do: a server that closes an idle keep-alive
  connection has not processed a request on it. The price is that a server that crashes
  on every request sees it twice.

Errors are crossroads' own, raised here where the socket is, as aiohttp's are translated
in :mod:`crossroads.dispatch.errors`: refused or reset before an answer is
:class:`UpstreamConnectError`; closed before the end of the response, or an unparsable one,
:class:`UpstreamProtocolError`; a deadline, :class:`UpstreamTimeoutError`.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import httptools

from crossroads.exceptions import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)

HIGH_WATER = 64 * 1024  # bytes a stream buffers for a slow consumer before pausing reads
DRAIN_GRACE_S = 1.0  # how long a finished stream may wait for the end of its HTTP message
_SLACK = 0.002  # loop timers may fire this early (uvloop rounds to milliseconds)
_INF = math.inf

_IDLE, _FIRST_BYTE, _READ = 0, 1, 2  # timer phases


class Headers(Mapping[str, str]):
    """Response headers with case-insensitive lookups, decoded only when first read."""

    __slots__ = ("_map", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._map: dict[str, str] | None = None

    def _built(self) -> dict[str, str]:
        if self._map is None:
            built: dict[str, str] = {}
            for name, value in self._raw:
                key, text = name.decode("latin-1").lower(), value.decode("latin-1")
                built[key] = f"{built[key]}, {text}" if key in built else text
            self._map = built
        return self._map

    def __getitem__(self, key: str) -> str:
        return self._built()[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    def __repr__(self) -> str:
        return f"Headers({self._built()!r})"


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.in_use = False
        self.reused = False
        self.counted = True  # holds one of the pool's max_connections slots
        self._reset(False)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = _INF

    def _reset(self, stream: bool) -> None:
        self.stream = stream
        self.waiter: asyncio.Future[None] | None = None
        self.error: UpstreamError | None = None
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.lost_early = False  # closed before any response byte
        self.draining = False
        self.phase = _IDLE
        self.first_at = self.total_at = self.last_data = 0.0

    # ---------------------------------------------------------------- one exchange

    def begin(self, request: bytes, stream: bool, total_at: float) -> asyncio.Future[None]:
        """Send ``request``; the future resolves at the head (streams) or the end."""
        self._reset(stream)
        self.in_use = True
        waiter = self.waiter = self.loop.create_future()
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            # closed between its release and this call: fail now, so it is resent
            self.lost_early = True
            self._fail(self._lost_error(None))
            return waiter
        transport.write(request)
        now = self.loop.time()
        self.phase = _FIRST_BYTE
        self.first_at = now + self.pool.timeouts.first_byte
        self.total_at = total_at
        self._arm(min(self.first_at, total_at))
        return waiter

    def wait(self) -> asyncio.Future[None]:
        """A future resolved when more body, the end or an error arrives."""
        waiter = self.waiter = self.loop.create_future()
        return waiter

    def take(self) -> bytes:
        """Every body chunk that arrived, joined; resumes reading if it was paused."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self.paused:
            self.paused = False
            self.last_data = self.loop.time()  # silence while paused was ours, not theirs
            if self.transport is not None:
                self.transport.resume_reading()
        return data

    def drain(self) -> bool:
        """Let a stream whose events all arrived finish its HTTP message (the chunked
        terminator may trail the last event); ``True`` when it already has."""
        if self.complete:
            return True
        self.draining = True
        self.chunks = []
        if self.paused:
            self.take()
        self.total_at = min(self.total_at, self.loop.time() + DRAIN_GRACE_S)
        self._arm(self._deadline())
        return False

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._disarm()
        self._wake()

    # ---------------------------------------------------------------- the one timer

    def _deadline(self) -> float:
        if self.phase == _FIRST_BYTE:
            at = self.first_at
        elif self.phase == _READ and not self.paused:
            at = self.last_data + self.pool.timeouts.read
        else:
            at = _INF
        return min(at, self.total_at)

    def _arm(self, at: float) -> None:
        if at < self.timer_at - _SLACK:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(at, self._on_timer)
            self.timer_at = at

    def _disarm(self) -> None:
        self.phase = _IDLE
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_at = _INF

    def _on_timer(self) -> None:
        self.timer, self.timer_at = None, _INF
        if self.phase == _IDLE or self.closed:
            return
        now = self.loop.time()
        at = self._deadline()
        if now + _SLACK < at:  # body arrived meanwhile: sleep until the new deadline
            if at < _INF:
                self._arm(at)
            return
        t, name = self.pool.timeouts, self.pool.name
        if self.draining:
            self.transport.abort()  # type: ignore[union-attr]
            return
        if now + _SLACK >= self.total_at:
            message = f"upstream {name!r} did not finish within timeouts.total ({t.total:g} s)"
        elif self.phase == _FIRST_BYTE:
            message = (
                f"upstream {name!r} sent nothing within timeouts.first_byte ({t.first_byte:g} s)"
            )
        else:
            message = (
                f"upstream {name!r} sent nothing for timeouts.read ({t.read:g} s) mid-response"
            )
        self._fail(UpstreamTimeoutError(message, upstream=name))
        self.transport.abort()  # type: ignore[union-attr]

    # ---------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.in_use:  # bytes nobody asked for: the connection is out of step
            self.transport.abort()  # type: ignore[union-attr]
            return
        self.got_bytes = True
        self.last_data = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(
                UpstreamProtocolError(
                    f"upstream {self.pool.name!r} sent a response that is not valid HTTP/1.1: {exc}",
                    upstream=self.pool.name,
                )
            )
            self.transport.abort()  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost says what it meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost_early = not self.got_bytes
        if self.in_use and not self.complete:
            if exc is None and self.headers_done and self._until_close():
                self.complete = True  # an HTTP/1.0-style body delimited by the close
                self._disarm()
                self._wake()
            else:
                self._fail(self._lost_error(exc))
        self._disarm()
        self.pool._free_slot(self)

    def _until_close(self) -> bool:
        names = {name.lower() for name, _ in self.raw_headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _lost_error(self, exc: BaseException | None) -> UpstreamError:
        name = self.pool.name
        if exc is not None and not self.got_bytes:
            return UpstreamConnectError(f"upstream {name!r} failed: {exc}", upstream=name)
        why = f": {exc}" if exc is not None else ""
        return UpstreamProtocolError(
            f"upstream {name!r} closed the connection before finishing the response{why}",
            upstream=name,
        )

    @property
    def stale(self) -> bool:
        """Closed before any answer on a reused connection: safe to send again."""
        return self.reused and self.lost_early and self.error is not None

    # ---------------------------------------------------------------- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        if self.stream:
            self._wake()  # first_byte keeps running until the first body byte
        else:
            self.phase = _READ
            self._arm(self._deadline())

    def on_body(self, body: bytes) -> None:
        if self.phase == _FIRST_BYTE:
            self.phase = _READ
            self._arm(self._deadline())
        if self.draining:
            return
        self.chunks.append(body)
        if self.stream:
            self.buffered += len(body)
            self._wake()
            if self.buffered > HIGH_WATER and not self.paused:
                self.paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._disarm()
        if self.draining:
            self.pool._release(self)
        else:
            self._wake()


class StreamResponse:
    """A response whose body arrives as chunks: ``async for chunk in response``.

    Always ``close()`` it: the connection goes back to the pool only if the body was read
    to the end (or, with ``reuse=True``, finishes within ``DRAIN_GRACE_S``)."""

    __slots__ = ("_conn", "_pool", "headers", "status")

    def __init__(self, pool: ConnectionPool, conn: _Connection) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
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
            self._pool._release(conn)
        elif conn.error is not None or not reuse:
            self._pool._discard(conn)


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
    ) -> None:
        self.host, self.port, self.name = host, port, name
        self.timeouts = timeouts  # connect, first_byte, read, total (crossroads.config.Timeouts)
        self.max_connections = max_connections
        self.loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._open = 0  # connections open or opening
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
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

    async def fetch(self, head: bytes, body: bytes) -> tuple[int, Headers, bytes]:
        """Send one request and read the whole response: ``(status, headers, body)``."""
        conn = await self._exchange(head + b"%d\r\n\r\n" % len(body) + body, False)
        result = (conn.status, Headers(conn.raw_headers), b"".join(conn.chunks))
        self._release(conn)
        return result

    async def open(self, head: bytes, body: bytes) -> StreamResponse:
        """Send one request and return once the response head arrived; read its body by
        iterating the :class:`StreamResponse`, then ``close()`` it."""
        conn = await self._exchange(head + b"%d\r\n\r\n" % len(body) + body, True)
        return StreamResponse(self, conn)

    async def _exchange(self, request: bytes, stream: bool) -> _Connection:
        total_at = self.loop.time() + self.timeouts.total
        conn = await self._acquire(total_at, fresh=False)
        try:
            await conn.begin(request, stream, total_at)
            if conn.error is not None and conn.stale:  # closed while we sent: once more
                conn = await self._acquire(total_at, fresh=True)
                await conn.begin(request, stream, total_at)
        except BaseException:
            self._discard(conn)
            raise
        if conn.error is not None:
            self._discard(conn)
            raise conn.error
        return conn

    # ---------------------------------------------------------------- the pool

    async def _acquire(self, total_at: float, fresh: bool) -> _Connection:
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

    async def _wait_or_connect(self, fresh: bool) -> _Connection:
        while True:
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
            if self._open < self.max_connections:
                return await self._connect()
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                conn_or_slot = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()  # given to us as we were cancelled: pass it on
                    if handed is not None:
                        self._release(handed)
                    else:
                        self._notify_slot()
                else:
                    waiter.cancel()
                raise
            if conn_or_slot is not None:
                if not conn_or_slot.closed:
                    return conn_or_slot
                conn_or_slot.in_use = False

    async def _connect(self) -> _Connection:
        self._open += 1
        conn = _Connection(self)  # owns the slot from here: freed once, when it is lost
        try:
            await self.loop.create_connection(lambda: conn, self.host, self.port)
        except OSError as exc:
            self._free_slot(conn)
            raise UpstreamConnectError(
                f"could not connect to upstream {self.name!r} at {self.host}:{self.port}: {exc}",
                upstream=self.name,
            ) from exc
        except BaseException:
            self._free_slot(conn)
            raise
        return conn

    def _release(self, conn: _Connection) -> None:
        conn.in_use = False
        conn.reused = True
        if conn.closed or self._closed or not conn.keep_alive:
            self._discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                conn.in_use = True
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.in_use = False
        conn._disarm()
        if not conn.closed and conn.transport is not None:
            conn.transport.abort()  # connection_lost frees the slot

    def _free_slot(self, conn: _Connection) -> None:
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
