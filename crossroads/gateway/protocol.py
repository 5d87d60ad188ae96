"""A lean HTTP/1.1 server protocol (httptools) that serves the gateway's ASGI app.

uvicorn keeps the process side (sockets, workers, lifespan, signals, graceful shutdown) and
builds this protocol for each connection in place of its own
(``uvicorn.Config(http=GatewayProtocol)``). It speaks the subset of ASGI the gateway uses:
a request body is read whole before the app runs (the gateway needs the whole JSON anyway),
and a response's status line and headers leave in the same write as its first body bytes.
Keep-alive, pipelining (one request at a time, in order), ``Expect: 100-continue``, chunked
request and response bodies, write back-pressure, idle timeouts and graceful shutdown work
as in uvicorn's protocol; malformed requests get a 400 in the OpenAI error format.

Limits (``server.*``): a request's head must arrive within ``header_timeout_s`` and its body
within ``body_timeout_s`` (else 408), the head is bounded by ``max_head_bytes`` as it arrives
(431), a client that leaves a full write buffer unread for ``write_timeout_s`` is dropped,
an idle keep-alive connection closes after ``idle_timeout_s``, and a worker holds at most
``max_connections`` connections (one more is answered 503). A refusal is written, then the
connection half-closes and drops what the client still sends (a bounded lingering close), so
the client reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import http
import logging
import math
from collections import deque
from typing import Any
from urllib.parse import unquote

import httptools

from crossroads.config.server import ServerConfig
from crossroads.exceptions import (
    ClientGoneError,
    ConnectionLimitError,
    HeadTooLargeError,
    InvalidRequestError,
    RequestError,
    RequestTimeoutError,
)
from crossroads.gateway.errors import render, too_large

log = logging.getLogger("crossroads.gateway")

DEFAULTS = ServerConfig()
MAX_HEAD_BYTES = DEFAULTS.max_head_bytes
DISCARD_BYTES = 16 * 1024 * 1024  # body bytes read and dropped after a refusal, at most
LINGER_S = 2.0  # after a refusal, what the client still sends is dropped for this long
# At shutdown, a connection just accepted (nothing answered on it yet) gets this long for its
# request to arrive: the client sent it, or is sending it, before it could know.
SHUTDOWN_GRACE_S = 1.0
_SLACK = 0.002  # loop timers may fire this early (uvloop rounds to milliseconds)
_ASGI = {"version": "3.0", "spec_version": "2.3"}

STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
    for status in http.HTTPStatus
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DISCONNECT = {"type": "http.disconnect"}
METHODS = {name.encode(): name for name in ("GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE")}


def error_response(exc: BaseException) -> bytes:
    """A complete ``connection: close`` response with an OpenAI-format error body."""
    status, body, _ = render(exc)
    return b"".join(
        [
            STATUS_LINES[status],
            b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class _Request:
    """One request as the parser builds it, then its ASGI cycle."""

    __slots__ = (
        "protocol",
        "url",
        "headers",
        "counted",
        "head_bytes",
        "head_count",
        "body",
        "size",
        "scope",
        "keep_alive",
        "expect_continue",
        "started",
        "chunked",
        "remaining",
        "head",
        "complete",
        "disconnected",
        "body_sent",
        "waiter",
        "error",
        "answered",
        "task",
    )

    def __init__(self, protocol: GatewayProtocol) -> None:
        self.protocol = protocol
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.counted = 0  # headers already in head_bytes (a head that spans reads)
        self.head_bytes = 0
        self.head_count = 0  # headers in the head: more are trailers (counted in the limit)
        self.body: list[bytes] = []
        self.size = 0
        self.scope: dict[str, Any] = {}
        self.keep_alive = True
        self.expect_continue = False
        self.started = False  # http.response.start received
        self.chunked = False
        self.remaining = 0  # content-length still owed when not chunked
        self.head = b""  # status line and headers, written with the first body bytes
        self.complete = False  # the whole response was written
        self.disconnected = False
        self.body_sent = False
        self.waiter: asyncio.Future[None] | None = None
        self.error: bytes | None = None  # refused while parsing: this answer, no app
        self.answered = False  # the refusal was written early
        self.task: asyncio.Task[None] | None = None  # serving it

    # ASGI receive / send, bound per request
    def read_body(self) -> bytes:
        """The whole body, as the first ``receive`` gives it, without the message (the
        protocol reads a body whole before the app runs)."""
        self.body_sent = True
        body = self.body
        return body[0] if len(body) == 1 else b"".join(body)

    async def receive(self) -> dict[str, Any]:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": b"".join(self.body), "more_body": False}
        if not (self.disconnected or self.complete):
            self.waiter = self.protocol.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return _DISCONNECT

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _head(self, parts: list[bytes], lines: int, chunked: bool) -> bytes:
        """The head of ``parts`` (the status line and ``lines - 1`` header lines so far):
        the date, ``connection: close`` if it closes, the framing, the blank line."""
        protocol = self.protocol
        date = protocol._date
        if protocol.server_state.default_headers is not protocol._date_source:
            date = protocol.date_header()  # renewed once a second
        parts.append(date)
        lines += protocol.date_lines + 1  # and the blank line that ends the head
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
            lines += 1
        if chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
            lines += 1
        parts.append(b"\r\n")
        head = b"".join(parts)
        # Each line above ends in CRLF, so any other CR or LF came from a header name or
        # value (response splitting). Two counts over the head, not a test per header:
        # ``bytes in bytes`` raises and clears a TypeError inside CPython 3.11 each time.
        if head.count(b"\n") != lines or head.count(b"\r") != lines:
            raise RuntimeError("invalid character in a response header")
        return head

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole response in one call and one write: what ``send`` makes of a start whose
        ``content-length`` is the body's and one last body message, without the messages
        (:func:`crossroads.gateway.handlers.send_body` calls it when the server offers it)."""
        if self.disconnected:
            raise ClientGoneError("the client disconnected")
        if self.started:
            raise RuntimeError("a response was already started")
        self.started = True
        parts = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(body))
        head = self._head(parts, len(headers) + 2, False)
        self.protocol.transport.write(head if self.scope["method"] == "HEAD" else head + body)
        self.complete = True
        self.wake()
        self.protocol.response_done(self)

    async def send(self, message: dict[str, Any]) -> None:
        protocol = self.protocol
        if self.disconnected:
            raise ClientGoneError("the client disconnected")
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self.started = True
            status = message["status"]
            parts = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
            lines = 1  # the status line
            length: int | None = None
            for name, value in message.get("headers", ()):
                if name == b"content-length":
                    length = int(value)
                parts += (name, b": ", value, b"\r\n")
                lines += 1
            self.chunked = (
                length is None and status not in (204, 304) and self.scope["method"] != "HEAD"
            )
            self.remaining = length or 0
            self.head = self._head(parts, lines, self.chunked)
            return
        if self.complete or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        out = self.head
        self.head = b""
        if self.scope["method"] == "HEAD":
            body = b""
        elif self.chunked:
            if body:
                out += b"%x\r\n%b\r\n" % (len(body), body)
            if not more:
                out += b"0\r\n\r\n"
        else:
            self.remaining -= len(body)
            if self.remaining < 0:
                raise RuntimeError("response body longer than its content-length")
            out += body
        if out:
            protocol.transport.write(out)
        if not more:
            self.complete = True
            self.wake()
            protocol.response_done(self)
        elif protocol.write_paused:
            await protocol.drain()
            if self.disconnected:
                raise ClientGoneError("the client disconnected")


class GatewayProtocol(asyncio.Protocol):
    """uvicorn builds one per connection: ``GatewayProtocol(config=..., server_state=...)``."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any] | None = None,
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        limits = _settings(self.app)
        self.max_body = limits.max_body_bytes
        self.max_head = limits.max_head_bytes
        self.max_connections = limits.max_connections
        self.header_timeout_s = limits.header_timeout_s
        self.body_timeout_s = limits.body_timeout_s
        self.write_timeout_s = limits.write_timeout_s
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.keep_alive_s = config.timeout_keep_alive
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.reading: _Request | None = None  # being parsed
        self.queue: deque[_Request] = deque()  # parsed, waiting for the one in service
        self.serving: _Request | None = None
        self.timer: asyncio.TimerHandle | None = None  # idle, head or body deadline
        self.timer_at = math.inf  # when the timer fires
        self.deadline = 0.0  # when what is timed times out (loop time)
        self.timing = ""  # which of "idle", "head", "body" is timed
        self.stalled: asyncio.TimerHandle | None = None  # write deadline while paused
        self.head_fed = 0  # bytes fed inside an unfinished head
        self.fed = 0  # bytes of the current feed
        self.headers: list[tuple[bytes, bytes]] = []  # of the request being parsed
        self.head_ended = False  # a head (or a message) ended during the current feed
        self.lingering = False  # refused: dropping input until the close
        self.discarded = 0
        self.write_paused = False
        self.read_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.closing = False
        self.answered = False  # a response was written on this connection
        self.rejection: bytes | None = None  # the answer to a request that was refused
        self._date_source: Any = None
        self._date = b""
        self.date_lines = 0
        self.scope: dict[str, Any] = {}  # what every request's scope starts from

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        connections = self.server_state.connections
        if len(connections) >= self.max_connections:
            self.closing = True
            self.rejection = error_response(
                ConnectionLimitError(
                    f"The gateway holds its maximum of {self.max_connections} connections "
                    "(server.max_connections); retry shortly."
                )
            )
            self._linger()
            return
        connections.add(self)
        self.scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "root_path": "",
            "headers": [],
            "client": transport.get_extra_info("peername"),  # once, not per request
            "server": transport.get_extra_info("sockname"),
        }
        self._arm("idle", self.keep_alive_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self.closing = True
        for timer in (self.timer, self.stalled):
            if timer is not None:
                timer.cancel()
        for request in (self.serving, *self.queue):
            if request is not None and not request.complete:
                request.disconnected = True
                request.wake()
        self.queue.clear()
        self.write_paused = False
        self._release_drain()

    def shutdown(self) -> None:
        """Graceful shutdown. An answered keep-alive connection that waits closes now; one
        serving closes after its response; one whose request is arriving, or that has not
        sent one yet since it was accepted, is answered (within :data:`SHUTDOWN_GRACE_S`
        for a request to begin), then closed: a rolling restart drops no request on its way."""
        self.closing = True
        if self.serving is not None:
            self.serving.keep_alive = False
        elif self.reading is not None or self.queue or not self.answered:
            self.loop.call_later(SHUTDOWN_GRACE_S, self._close_if_waiting)
        else:
            self.transport.close()

    def _close_if_waiting(self) -> None:
        """The shutdown grace is over: close unless a request is being read or served (the
        head and body timeouts and the close after its response bound those)."""
        if self.serving is None and self.reading is None and not self.queue:
            self.transport.close()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.stalled is None:
            self.stalled = self.loop.call_later(self.write_timeout_s, self._write_timeout)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.stalled is not None:
            self.stalled.cancel()
            self.stalled = None
        self._release_drain()

    def _write_timeout(self) -> None:
        """The client read nothing of a full buffer for ``write_timeout_s``: drop it."""
        self.stalled = None
        if self.write_paused:
            log.info("dropping a client that stopped reading for %ss", self.write_timeout_s)
            self.transport.abort()

    async def drain(self) -> None:
        if self.drained is None or self.drained.done():
            self.drained = self.loop.create_future()
        await asyncio.shield(self.drained)

    def _release_drain(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def _arm(self, timing: str, delay: float) -> None:
        """Time ``timing`` out ``delay`` s from now. One timer serves every phase of the
        connection: it is moved only when it would fire too late, and when it fires early
        it sleeps again until the deadline, so a keep-alive request costs no timer of its
        own (no ``call_later`` and ``cancel`` per request)."""
        self.timing = timing
        at = self.deadline = self.loop.time() + delay
        if at < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(at, self._timed_out)
            self.timer_at = at

    def _disarm(self) -> None:
        self.timing = ""  # the timer, if armed, fires and finds nothing timed

    def _stop_timer(self) -> None:
        self.timing = ""
        self.timer_at = math.inf
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _watch_reading(self) -> None:
        """After a feed: time the head or the body of the request being read, if any."""
        request = self.reading
        if request is None:
            if self.timing in ("head", "body"):
                self._disarm()
            return
        if request.scope:
            if self.timing != "body":
                self._arm("body", self.body_timeout_s)
        elif self.timing != "head":
            self._arm("head", self.header_timeout_s)

    def _timed_out(self) -> None:
        self.timer, self.timer_at = None, math.inf
        timing = self.timing
        if not timing or self.transport.is_closing():
            return
        if self.loop.time() + _SLACK < self.deadline:  # re-armed since: sleep until then
            self.timer = self.loop.call_at(self.deadline, self._timed_out)
            self.timer_at = self.deadline
            return
        self.timing = ""
        if timing == "idle":
            if self.serving is None:
                # An answer still unread in the buffer is dropped, not flushed forever.
                if self.transport.get_write_buffer_size():
                    self.transport.abort()
                else:
                    self.transport.close()
            return
        head = timing == "head"
        limit = self.header_timeout_s if head else self.body_timeout_s
        if self.serving is not None or self.read_paused:  # the wait is ours, not the client's
            self._arm(timing, limit)
            return
        what, setting = ("headers", "header_timeout_s") if head else ("body", "body_timeout_s")
        self._reject(
            RequestTimeoutError(
                f"The request {what} did not arrive within {limit:g} s (server.{setting})."
            )
        )

    def _linger(self) -> None:
        """Write the refusal, half-close, and drop what the client still sends for a bounded
        time and size, so it reads the answer instead of a connection reset."""
        transport = self.transport
        if self.rejection is not None:
            transport.write(self.rejection)
            self.rejection = None
        self._stop_timer()
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.lingering = True
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()
        self.timer = self.loop.call_later(LINGER_S, transport.abort)

    def date_header(self) -> bytes:
        source = self.server_state.default_headers
        if source is not self._date_source:  # uvicorn renews the list once a second
            self._date_source = source
            self._date = b"".join(b"%b: %b\r\n" % pair for pair in source)
            self.date_lines = len(source)
        return self._date

    # ------------------------------------------------------------------ parsing

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self.discarded += len(data)
            if self.discarded > DISCARD_BYTES:
                self.transport.abort()
            return
        if self.timing == "idle":
            self._disarm()
        self.head_ended = False
        self.fed = len(data)
        try:
            self.parser.feed_data(data)
            request = self.reading
            if request is not None and not request.scope:  # inside an unfinished head
                # Counted as bytes arrive: httptools grows an unfinished header by
                # concatenation, so waiting for it to end costs quadratic time.
                if self.head_ended:  # this head began in this chunk: at most its length
                    self.head_fed = 0
                else:
                    self.head_fed += len(data)
                    if self.head_fed > self.max_head:
                        raise HeadTooLargeError(
                            f"The request headers are over {self.max_head} bytes."
                        )
                self._count_head(request)
            elif request is not None and len(request.headers) > request.head_count:
                self._count_head(request)  # trailers of a chunked body count as head bytes
        except HeadTooLargeError as exc:
            self._reject(exc)
        except httptools.HttpParserUpgrade:
            # No upgrades (WebSocket, h2c) here: the request is served as plain HTTP/1.1
            # and the connection closes after it, as the parser cannot read on.
            if self.reading is not None:
                self.reading.keep_alive = False
            for request in self.queue:
                request.keep_alive = False
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # what a callback raised, if one did
            if isinstance(cause, RequestError):
                self._reject(cause)
            else:
                self._reject(InvalidRequestError(f"Malformed HTTP request: {exc}."))
        if self.rejection is None and not self.lingering and (self.reading or self.timing):
            self._watch_reading()

    def _reject(self, exc: RequestError) -> None:
        """The parser cannot go on: answer (after the responses owed to earlier pipelined
        requests) and close the connection."""
        self.reading = None
        self.rejection = error_response(exc)
        self._disarm()
        if not self.read_paused:
            self.transport.pause_reading()
            self.read_paused = True
        if self.serving is None:
            self._next()

    def on_message_begin(self) -> None:
        request = self.reading = _Request(self)
        self.headers = request.headers
        self.head_ended = True

    # The head's size is checked where it can be over the limit, not in every callback: a
    # head that began in the current read and is done within it is at most that read's
    # length (plus a byte a header, as the count below has no optional spaces).
    def on_url(self, url: bytes) -> None:
        self.reading.url += url  # type: ignore[union-attr]

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def _count_head(self, request: _Request) -> None:
        """431 if the request line and the headers parsed so far are over ``max_head_bytes``
        (counting each header as name, value and 4 bytes; the new headers only)."""
        if len(request.url) > self.max_head:
            raise HeadTooLargeError(f"The request line is over {self.max_head} bytes.")
        headers = request.headers
        total = request.head_bytes
        for name, value in headers[request.counted :]:
            total += len(name) + len(value) + 4
        request.counted = len(headers)
        request.head_bytes = total
        if len(request.url) + total > self.max_head:
            raise HeadTooLargeError(f"The request headers are over {self.max_head} bytes.")

    def on_headers_complete(self) -> None:
        request = self.reading
        assert request is not None
        if not self.head_ended or self.fed + len(request.headers) > self.max_head:
            self._count_head(request)
        parser = self.parser
        method = parser.get_method()
        raw_path, _, query = request.url.partition(b"?")
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        request.keep_alive = parser.should_keep_alive() and not self.closing
        # A copy of the connection's scope, every key in place: cheaper than a new dict.
        scope = request.scope = self.scope.copy()
        scope["http_version"] = parser.get_http_version()
        scope["method"] = METHODS.get(method) or method.decode("ascii")
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = request.headers
        request.head_count = len(request.headers)
        for name, value in request.headers:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidRequestError("Invalid Content-Length header.") from None
                if declared > self.max_body:
                    self._refuse(request, too_large(declared, self.max_body))
            elif name == b"expect" and value.lower() == b"100-continue":
                request.expect_continue = True
        if request.expect_continue and self.serving is None:
            self._continue(request)

    def _continue(self, request: _Request) -> None:
        """``Expect: 100-continue``: ask for the body (never in the middle of a response)."""
        if request.expect_continue and request.error is None:
            request.expect_continue = False
            self.transport.write(CONTINUE)

    def _refuse(self, request: _Request, exc: RequestError) -> None:
        """Answer ``request`` with an error without running the app, and close after it.
        Its body is still read (and dropped, up to a bound) so the client can read the
        answer instead of meeting a reset connection."""
        request.error = error_response(exc)
        request.body.clear()
        request.keep_alive = False
        if self.serving is None and not self.queue and not request.answered:
            request.answered = True
            self.transport.write(request.error)  # early: before the body arrives

    def on_body(self, body: bytes) -> None:
        request = self.reading
        assert request is not None
        request.size += len(body)
        if request.error is not None:
            if request.size > self.max_body + DISCARD_BYTES:
                raise too_large(request.size, self.max_body)  # stop reading: close
        elif request.size > self.max_body:
            self._refuse(request, too_large(request.size, self.max_body))
        else:
            request.body.append(body)

    def on_message_complete(self) -> None:
        request = self.reading
        assert request is not None
        if len(request.headers) > request.head_count:  # trailers: head bytes too
            self._count_head(request)
        self.reading = None
        if self.serving is None:
            self._serve(request)
        else:
            self.queue.append(request)
            if not self.read_paused:  # pipelined: read no further until the queue drains
                self.read_paused = True
                self.transport.pause_reading()

    # ------------------------------------------------------------------ serving

    def _serve(self, request: _Request) -> None:
        if request.error is not None:  # refused while parsing: answer, close
            if not request.answered:
                self.transport.write(request.error)
            self.transport.close()
            return
        self.serving = request
        request.task = self.loop.create_task(self._run(request))
        self.server_state.tasks.add(request.task)

    async def _run(self, request: _Request) -> None:
        # The task leaves uvicorn's set (what a graceful shutdown waits for) as it ends:
        # a done callback would cost a loop turn, and an epoll_wait, per request.
        try:
            await self.app(request.scope, request.receive, request.send)
            if not request.complete and not request.disconnected:
                log.error("the gateway left the response to %s unfinished", request.scope["path"])
        except ClientGoneError:
            pass
        except Exception as exc:
            log.exception("the gateway failed on %s", request.scope["path"])
            if not request.started and not request.disconnected:
                self.transport.write(error_response(exc))
        finally:
            # A response cut short (error, cancellation) leaves the connection unusable.
            if not request.complete:
                self.transport.close()
            self.server_state.tasks.discard(request.task)

    def response_done(self, request: _Request) -> None:
        """Called by ``send`` when a response is fully written."""
        self.server_state.total_requests += 1
        self.serving = None
        self.answered = True
        if not request.keep_alive or self.transport.is_closing():
            self.transport.close()
        elif self.queue or self.rejection or self.reading or self.read_paused:
            self._next()
        else:  # the common case of _next: wait for the next request
            self._arm("idle", self.keep_alive_s)

    def _next(self) -> None:
        """Serve the next pipelined request, answer a rejected one, or wait for more."""
        if self.queue:
            self._serve(self.queue.popleft())
            return
        if self.rejection is not None:
            if not self.transport.is_closing():
                self._linger()
            return
        if self.reading is not None:  # a request half read: it may wait for 100 Continue
            self._continue(self.reading)
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.reading is None:
            self._arm("idle", self.keep_alive_s)


def serving_task(receive: Any) -> asyncio.Task[None] | None:
    """The task serving a request, from its ``receive``, when this protocol serves it."""
    owner = getattr(receive, "__self__", None)
    return owner.task if type(owner) is _Request else None


def _settings(app: Any) -> ServerConfig:
    """The gateway's ``server`` settings, looked up through uvicorn's middleware (defaults
    for another ASGI app)."""
    for _ in range(8):
        server = getattr(getattr(app, "config", None), "server", None)
        if isinstance(server, ServerConfig):
            return server
        app = getattr(app, "app", None)
    return DEFAULTS
