"""A lean Redis client for the state backend: one connection per worker, every command
pipelined on it (Redis answers in order), replies parsed by hiredis.

redis-py's asyncio client checks a connection out of a pool, packs the arguments in Python
and runs a response callback for every call: 70 to 110 µs of CPU per call on the benchmark
machine, three to four times the round trip (``bench/RESULTS.md``). Here a call packs its
command in C, writes it and waits for its reply: requests in flight together share the
connection instead of taking one each.

URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS; query
``ssl_cert_reqs=none`` to skip verification, ``ssl_ca_certs=<file>``) and
``unix://[[user]:password@]/path/to/socket[?db=N]``. Needs ``hiredis``
(``pip install "crossroads[redis]"``), imported on first use.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class ReplyError(Exception):
    """Redis answered a command with an error (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _Connection(asyncio.Protocol):
    """One socket; ``pending`` holds the futures of the commands sent, oldest first."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader, pending = self.reader, self.pending
        reader.feed(data)
        try:
            reply = reader.gets()
            while reply is not False:
                future = pending.popleft()[0]
                if not future.done():  # a caller that timed out is gone; its reply is skipped
                    future.set_result(reply)
                reply = reader.gets()
        except Exception:  # not RESP, or more replies than commands: the socket is unusable
            assert self.transport is not None
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = ConnectionError(f"the connection to Redis closed ({exc or 'by the server'})")
        while self.pending:
            future = self.pending.popleft()[0]
            if not future.done():
                future.set_exception(error)


class RespClient:
    """Commands over one lazily opened connection, reopened after it is lost or stalls
    (a reply older than ``stall_s``). A caller that stops waiting (a timeout) does not
    disturb the order: its reply is read and dropped."""

    def __init__(self, url: str, connect_timeout_s: float = 1.0, stall_s: float = 2.0) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.stall_s = stall_s
        self._conn: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    async def execute(self, *args: Any) -> Any:
        """One command's reply; an error reply raises :class:`ReplyError`."""
        reply = await self._send([args])
        if isinstance(reply, Exception):
            raise ReplyError(str(reply))
        return reply

    async def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Every command's reply, in one write; error replies are returned as
        :class:`ReplyError`, not raised (the other commands ran)."""
        if not commands:
            return []
        futures = await self._send_all(commands)
        await futures[-1]  # replies arrive in order: when the last is in, all are
        return [_reply(f.result()) for f in futures]

    async def _send(self, commands: list[tuple[Any, ...]]) -> Any:
        return await (await self._send_all(commands))[-1]

    async def _send_all(self, commands: list[tuple[Any, ...]]) -> list[asyncio.Future[Any]]:
        import hiredis

        conn = self._conn
        now = time.monotonic()
        if (
            conn is None
            or conn.closed
            or (conn.pending and now - conn.pending[0][1] > self.stall_s)
        ):
            conn = await self._reconnect(conn)
        assert conn.transport is not None
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        conn.pending.extend((f, now) for f in futures)
        pack = hiredis.pack_command
        conn.transport.write(b"".join([pack(c) for c in commands]))
        return futures

    async def _reconnect(self, stale: _Connection | None) -> _Connection:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is not stale and self._conn is not None and not self._conn.closed:
                return self._conn  # another caller reconnected meanwhile
            if stale is not None and stale.transport is not None and not stale.closed:
                stale.transport.abort()  # a stalled socket: its waiters fail now
            self._conn = None
            async with asyncio.timeout(self.connect_timeout_s):
                conn = await self._open()
            self._conn = conn
            return conn

    async def _open(self) -> _Connection:
        import hiredis

        url = urlsplit(self.url)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        loop = asyncio.get_running_loop()
        protocol = _Connection(hiredis.Reader())
        if url.scheme == "unix":
            await loop.create_unix_connection(lambda: protocol, unquote(url.path))
            db = query.get("db", "0")
        else:
            ssl = _ssl_context(query) if url.scheme == "rediss" else None
            host, port = url.hostname or "127.0.0.1", url.port or 6379
            await loop.create_connection(lambda: protocol, host, port, ssl=ssl)
            db = url.path.strip("/") or query.get("db", "0")
        setup: list[tuple[Any, ...]] = []
        if url.password is not None:
            user = unquote(url.username) if url.username else None
            password = unquote(url.password)
            setup.append(("AUTH", user, password) if user else ("AUTH", password))
        if db != "0":
            setup.append(("SELECT", db))
        if setup:
            self._conn = protocol
            try:
                for reply in await self.pipeline(setup):
                    if isinstance(reply, ReplyError):
                        raise reply
            except BaseException:
                self._conn = None
                if protocol.transport is not None:
                    protocol.transport.abort()
                raise
        return protocol

    async def aclose(self) -> None:
        """Close the connection (waiting calls fail)."""
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None and not conn.closed:
            conn.transport.close()


def _reply(value: Any) -> Any:
    return ReplyError(str(value)) if isinstance(value, Exception) else value


def _ssl_context(query: dict[str, str]) -> Any:
    import ssl

    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    if query.get("ssl_cert_reqs", "required").lower() == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
