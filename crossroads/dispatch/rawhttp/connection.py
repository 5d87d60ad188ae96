"""One keep-alive HTTP/1.1 connection: an asyncio ``Protocol`` fed to httptools, with the
single deadline timer of the call it carries (see :mod:`crossroads.dispatch.rawhttp`)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import httptools

from crossroads.dispatch.errors import body_too_large, compressed, is_compressed
from crossroads.exceptions import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)

if TYPE_CHECKING:
    from crossroads.dispatch.rawhttp.pool import ConnectionPool

HIGH_WATER = 64 * 1024  # bytes a stream buffers for a slow consumer before pausing reads
MAX_HEAD_BYTES = 64 * 1024  # response head (status line and headers, 1xx heads included)
MAX_HEADERS = 100  # headers in one response head
MAX_INFORMATIONAL = 8  # 1xx heads before the answer
DRAIN_GRACE_S = 1.0  # how long a finished stream may wait for the end of its HTTP message
_SLACK = 0.002  # loop timers may fire this early (uvloop rounds to milliseconds)
_INF = math.inf

_IDLE, _FIRST_BYTE, _READ = 0, 1, 2  # timer phases


class _Refused(Exception):
    """Raised in a parser callback to stop httptools at once; the error is already set."""


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


class Connection(asyncio.Protocol):
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
        self.head_bytes = 0  # bytes received while the answer's head was not complete
        self.informational_heads = 0
        self.length: bytes | None = None  # content-length, as sent
        self.encoding: bytes | None = None  # content-encoding, as sent
        self.body_left = 0  # body bytes allowed before max_response_bytes is passed
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.headers_done = False
        self.informational = False  # a 1xx head: the real one follows
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.lost_early = False  # closed before any response byte
        self.draining = False
        self.phase = _IDLE
        self.first_at = self.total_at = self.last_data = 0.0
        self.total_is_deadline = False  # total_at is the caller's deadline, not timeouts.total

    # ---------------------------------------------------------------- one exchange

    def begin(
        self, request: bytes, stream: bool, total_at: float, is_deadline: bool = False
    ) -> asyncio.Future[None]:
        """Send ``request``; the future resolves at the head (streams) or the end
        (``is_deadline``: ``total_at`` is the caller's deadline, earlier than timeouts.total)."""
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
        self.total_is_deadline = is_deadline
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
        # The timer stays armed: it fires, finds nothing timed and stops; or the next call
        # on this pooled connection, whose deadlines are later, takes it over. So a call
        # on a warm connection costs no timer of its own.
        self.phase = _IDLE

    def _cancel_timer(self) -> None:
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
        if now + _SLACK >= self.total_at and self.total_is_deadline:
            message = f"upstream {name!r} did not answer within the dispatch deadline"
        elif now + _SLACK >= self.total_at:
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
        if not self.headers_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # no-op when a callback refused (its error is set) or the response was complete
            self._fail(self._protocol_error(f"sent a response that is not valid HTTP/1.1: {exc}"))
            self.keep_alive = False
            self.transport.abort()  # type: ignore[union-attr]
            return
        if not self.headers_done and self.head_bytes > MAX_HEAD_BYTES:
            self._fail(self._head_error())
            self.transport.abort()  # type: ignore[union-attr]

    def _protocol_error(self, what: str) -> UpstreamProtocolError:
        return UpstreamProtocolError(f"upstream {self.pool.name!r} {what}", upstream=self.pool.name)

    def _head_error(self) -> UpstreamProtocolError:
        return self._protocol_error(
            f"sent a response head over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers"
        )

    def _refuse(self, error: UpstreamError) -> None:
        """Fail the exchange from inside a parser callback and stop the parser; the
        connection is closed, never pooled."""
        self.keep_alive = False
        self._fail(error)
        raise _Refused

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
        self._cancel_timer()
        self.pool.free_slot(self)

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

    def on_message_begin(self) -> None:
        if self.complete:  # a second response nobody asked for: the connection is out of step
            self._refuse(self._protocol_error("sent bytes after the end of its response"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))
        n = len(name)
        if n == 14 or n == 16:  # only the framing headers are looked at, and only by length
            key = name.lower()
            if key == b"content-length":
                self.length = value
            elif key == b"content-encoding":
                self.encoding = value

    def on_headers_complete(self) -> None:
        raw = self.raw_headers
        if len(raw) > MAX_HEADERS or (
            self.head_bytes > MAX_HEAD_BYTES
            and sum(len(name) + len(value) + 4 for name, value in raw) > MAX_HEAD_BYTES
        ):
            self._refuse(self._head_error())
        status = self.parser.get_status_code()
        if status < 200:
            self.informational_heads += 1
            if self.informational_heads > MAX_INFORMATIONAL:
                self._refuse(
                    self._protocol_error(
                        f"sent more than {MAX_INFORMATIONAL} informational (1xx) heads "
                        "before its answer"
                    )
                )
            self.informational = True
            return
        if self.encoding is not None and is_compressed(self.encoding):
            self._refuse(compressed(self.pool.name, self.encoding.decode("latin-1")))
        if self.stream and status >= 300:
            self.stream = False  # an error answering a stream is read whole, like a JSON body
        if not self.stream:  # (a stream's body is bounded by its events: see sse.frames)
            self.body_left = self.pool.max_response_bytes
            if self.length is not None and _int(self.length) > self.body_left:
                self._refuse(body_too_large(self.pool.name, self.body_left))
        self.status = status
        self.headers_done = True
        if self.stream:
            self._wake()  # first_byte keeps running until the first body byte
        else:
            self.phase = _READ
            # _arm(_deadline()), inline: the read deadline is mostly later than the timer
            at = min(self.last_data + self.pool.timeouts.read, self.total_at)
            if at < self.timer_at - _SLACK:
                self._arm(at)

    def on_body(self, body: bytes) -> None:
        if not self.stream:
            self.body_left -= len(body)
            if self.body_left < 0:
                self._refuse(body_too_large(self.pool.name, self.pool.max_response_bytes))
            self.chunks.append(body)
            return
        if self.phase == _FIRST_BYTE:
            self.phase = _READ
            self._arm(self._deadline())
        if self.draining:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        self._wake()
        if self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        if self.informational:  # e.g. "100 Continue", sent unasked by some servers
            self.informational = False
            self.raw_headers = []
            self.length = self.encoding = None
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self.phase = _IDLE  # _disarm()
        if self.draining:
            self.pool.release(self)
        else:
            self._wake()


def _int(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return 0  # httptools refuses an invalid content-length itself
