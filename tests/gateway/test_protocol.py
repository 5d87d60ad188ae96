"""The gateway's own HTTP/1.1 protocol, spoken to over raw sockets: framing, keep-alive,
pipelining, refusals and disconnects (the OpenAI-level behaviour is in test_app.py, which
runs over this protocol too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httptools
import orjson
import pytest

from crossroads.gateway import create_app
from crossroads.gateway.protocol import MAX_HEAD_BYTES, GatewayProtocol
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.server_thread import BackgroundServer

LIMIT = 64 * 1024
BODY = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture
def served(fake_upstream: FakeUpstream) -> Iterator[tuple[BackgroundServer, MemoryTraceStore]]:
    store = MemoryTraceStore()
    app = create_app(
        routing_config(fake_upstream.base_url, server={"max_body_bytes": LIMIT}), store=store
    )
    with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        yield server, store


class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.done = False


class Conn:
    """A raw HTTP/1.1 connection that reads responses with httptools' response parser."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.responses: list[Response] = []
        self.parser = httptools.HttpResponseParser(self)
        self.interim: list[int] = []

    # parser callbacks
    def on_message_begin(self) -> None:
        self.responses.append(Response())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.responses[-1].headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.responses[-1].status = status

    def on_body(self, body: bytes) -> None:
        self.responses[-1].body += body

    def on_message_complete(self) -> None:
        response = self.responses[-1]
        if 100 <= response.status < 200:  # interim: not a response of its own
            self.interim.append(response.status)
            self.responses.pop()
        else:
            response.done = True

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self, n: int = 1, timeout: float = 10) -> list[Response]:
        """Read until ``n`` complete responses arrived (or the server closed)."""
        async with asyncio.timeout(timeout):
            while sum(r.done for r in self.responses) < n:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.parser.feed_data(data)
        return [r for r in self.responses if r.done]

    async def closed(self, timeout: float = 5) -> bool:
        async with asyncio.timeout(timeout):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return True
                self.parser.feed_data(data)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def connect(served) -> AsyncIterator[Any]:
    server, _ = served
    conns: list[Conn] = []

    async def open_conn() -> Conn:
        conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        conns.append(conn)
        return conn

    yield open_conn
    for conn in conns:
        conn.close()


def post(body: bytes = BODY, path: str = "/v1/chat/completions", extra: bytes = b"") -> bytes:
    return (
        b"POST %b HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n%b\r\n%b" % (path.encode(), len(body), extra, body)
    )


async def test_keep_alive_serves_many_requests_on_one_connection(connect) -> None:
    conn = await connect()
    for i in range(5):
        await conn.send(post())
        responses = await conn.read(i + 1)
        assert responses[-1].status == 200
        assert responses[-1].headers["content-length"] == str(len(responses[-1].body))
        assert orjson.loads(responses[-1].body)["choices"][0]["message"]["content"] == "echo: hi"
        assert "date" in responses[-1].headers and "connection" not in responses[-1].headers


async def test_pipelined_requests_are_answered_in_order(connect, served) -> None:
    _, store = served
    conn = await connect()
    texts = ["one", "two", "three"]
    data = b"".join(
        post(orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": t}]}))
        for t in texts
    )
    await conn.send(data + b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    responses = await conn.read(4)
    assert [r.status for r in responses] == [200, 200, 200, 200]
    answers = [orjson.loads(r.body)["choices"][0]["message"]["content"] for r in responses[:3]]
    assert answers == [f"echo: {t}" for t in texts]
    assert orjson.loads(responses[3].body) == {"status": "ok"}


async def test_chunked_request_body(connect) -> None:
    conn = await connect()
    half = len(BODY) // 2
    chunks = b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (
        half,
        BODY[:half],
        len(BODY) - half,
        BODY[half:],
    )
    await conn.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        + chunks
    )
    (response,) = await conn.read()
    assert response.status == 200, response.body


async def test_body_split_across_many_writes(connect) -> None:
    conn = await connect()
    raw = post()
    for i in range(0, len(raw), 7):
        await conn.send(raw[i : i + 7])
        await asyncio.sleep(0)
    (response,) = await conn.read()
    assert response.status == 200


async def test_stream_is_chunked_and_ends_the_message(connect) -> None:
    conn = await connect()
    body = orjson.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    await conn.send(post(body) + b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    stream, health = await conn.read(2)
    assert stream.status == 200 and stream.headers["transfer-encoding"] == "chunked"
    assert stream.body.endswith(b"data: [DONE]\n\n")
    assert health.status == 200  # the stream's end was framed right: the next one parses


async def test_expect_100_continue(connect) -> None:
    conn = await connect()
    head = post(b"", extra=b"expect: 100-continue\r\n").replace(
        b"content-length: 0", b"content-length: %d" % len(BODY)
    )
    await conn.send(head)
    async with asyncio.timeout(5):
        data = await conn.reader.readuntil(b"\r\n\r\n")
    assert data == b"HTTP/1.1 100 Continue\r\n\r\n"
    await conn.send(BODY)
    (response,) = await conn.read()
    assert response.status == 200


async def test_declared_body_over_the_limit_is_413_before_it_is_sent(connect) -> None:
    conn = await connect()
    await conn.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n"
        b"expect: 100-continue\r\n\r\n" % (LIMIT + 1)
    )
    (response,) = await conn.read()  # answered without sending a byte of the body
    assert response.status == 413 and response.headers["connection"] == "close"
    error = orjson.loads(response.body)["error"]
    assert error["code"] == "payload_too_large" and "max_body_bytes" in error["message"]
    assert conn.interim == []


async def test_body_over_the_limit_is_read_and_dropped_then_answered(connect) -> None:
    conn = await connect()
    await conn.send(post(b"x" * (LIMIT * 2)))  # sent whole: the client sees the answer
    (response,) = await conn.read()
    assert response.status == 413
    assert await conn.closed()


async def test_chunked_body_over_the_limit(connect) -> None:
    conn = await connect()
    piece = b"x" * 8192
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for _ in range(LIMIT // 8192 + 2))
    await conn.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    (response,) = await conn.read()
    assert response.status == 413 and orjson.loads(response.body)["error"]["code"]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "invalid_request"),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: x\r\n\r\n",
            400,
            "invalid_request",
        ),
        (
            b"GET /health HTTP/1.1\r\nx-big: " + b"a" * (MAX_HEAD_BYTES + 1) + b"\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
    ],
)
async def test_malformed_requests_get_an_openai_error_and_a_close(
    connect, raw: bytes, status: int, code: str
) -> None:
    conn = await connect()
    await conn.send(raw)
    (response,) = await conn.read()
    assert response.status == status
    error = orjson.loads(response.body)["error"]
    assert error["code"] == code and set(error) == {"message", "type", "param", "code"}
    assert await conn.closed()


async def test_good_requests_before_a_malformed_one_are_still_answered(connect) -> None:
    conn = await connect()
    await conn.send(post() + b"GARBAGE\r\n\r\n")
    first, second = await conn.read(2)
    assert first.status == 200 and second.status == 400
    assert await conn.closed()


async def test_http_10_and_connection_close(connect) -> None:
    conn = await connect()
    await conn.send(b"GET /health HTTP/1.0\r\n\r\n")
    (response,) = await conn.read()
    assert response.status == 200 and response.headers.get("connection") == "close"
    assert await conn.closed()
    conn = await connect()
    await conn.send(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    (response,) = await conn.read()
    assert response.status == 200
    assert await conn.closed()


async def test_head_gets_headers_without_a_body(connect) -> None:
    conn = await connect()
    await conn.send(
        b"HEAD /health HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    # Read raw: a response parser cannot know the first answer is to a HEAD.
    data = b""
    async with asyncio.timeout(5):
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b'{"status":"ok"}'):
            data += await conn.reader.read(65536)
    first, second = data.split(b"HTTP/1.1 200")[1:]
    assert b'{"status"' not in first and second.endswith(b'{"status":"ok"}')


async def test_upgrade_requests_are_served_as_http_1_1(connect) -> None:
    conn = await connect()
    await conn.send(
        b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
    )
    (response,) = await conn.read()
    assert response.status == 200


async def test_client_gone_mid_request_cancels_the_upstream_call(
    connect, served, fake_upstream: FakeUpstream
) -> None:
    _, store = served
    fake_upstream.set_fault("hang")
    conn = await connect()
    await conn.send(post())
    async with asyncio.timeout(5):
        while fake_upstream.stats()["in_flight"] < 1:
            await asyncio.sleep(0.01)
    conn.close()
    async with asyncio.timeout(5):
        while fake_upstream.stats()["in_flight"] > 0 or not store.recent(1):
            await asyncio.sleep(0.02)
    (trace,) = store.recent(1)
    assert trace["status"] == 499


async def test_idle_keep_alive_connections_are_closed(fake_upstream: FakeUpstream) -> None:
    app = create_app(routing_config(fake_upstream.base_url))
    async with BackgroundServer(
        app, http=GatewayProtocol, lifespan="on", timeout_keep_alive=0.3
    ) as server:
        conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        await conn.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        (response,) = await conn.read()
        assert response.status == 200
        assert await conn.closed(timeout=3)
        conn.close()


async def test_idle_time_counts_from_the_last_answer_not_the_connection(
    fake_upstream: FakeUpstream,
) -> None:
    """One timer serves a connection's whole life: when it fires while the connection was
    busy since, it sleeps again instead of closing a connection that is not idle."""
    app = create_app(routing_config(fake_upstream.base_url))
    async with BackgroundServer(
        app, http=GatewayProtocol, lifespan="on", timeout_keep_alive=0.3
    ) as server:
        conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        for n in range(1, 9):  # 8 requests 0.1 s apart: well past the first 0.3 s deadline
            await conn.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            responses = await conn.read(n)
            assert len(responses) == n and responses[-1].status == 200
            await asyncio.sleep(0.1)
        assert await conn.closed(timeout=3)
        conn.close()


async def test_slow_reader_gets_the_whole_stream(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that reads slowly through a small receive buffer: the protocol waits for
    the transport to drain instead of failing or dropping events."""
    import socket

    drains = []
    drain = GatewayProtocol.drain

    async def counted(self: GatewayProtocol) -> None:
        drains.append(1)
        await drain(self)

    monkeypatch.setattr(GatewayProtocol, "drain", counted)

    models = [{"name": "small", "upstream": "fake", "upstream_model": "s", "context_window": 10**7}]
    app = create_app(
        routing_config(
            fake_upstream.base_url,
            server={"max_body_bytes": 32 * 1024 * 1024},
            models=models,
            decisions=[],
            default={"models": ["small"]},
        )
    )
    text = "x" * 12_000_000  # more than the kernel's socket buffers hold
    body = orjson.dumps(
        {"model": "auto", "stream": True, "messages": [{"role": "user", "content": text}]}
    )
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        conn = Conn(*await asyncio.open_connection(sock=sock))
        await conn.send(post(body))
        await asyncio.sleep(0.5)  # the server fills its buffers meanwhile
        (response,) = await conn.read(timeout=60)
        conn.close()
    assert response.status == 200, response.body[:300]
    assert response.body.endswith(b"data: [DONE]\n\n")
    events = [
        orjson.loads(block[6:])
        for block in response.body.split(b"\n\n")
        if block.startswith(b"data: {")
    ]
    echoed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert echoed == "echo: " + text
    assert drains, "the write buffer never filled: the test did not exercise back-pressure"


@pytest.mark.parametrize("behaviour", ["raise", "return", "cut"])
async def test_an_app_that_fails_never_leaves_the_client_waiting(behaviour: str) -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        if behaviour == "cut":  # headers and a first chunk, then an error
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        if behaviour != "return":
            raise ValueError("boom")

    async with BackgroundServer(app, http=GatewayProtocol) as server:
        conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        await conn.send(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n")
        if behaviour == "raise":
            (response,) = await conn.read()
            assert response.status == 500
            assert orjson.loads(response.body)["error"]["code"] == "internal_error"
        assert await conn.closed()
        conn.close()


@pytest.mark.parametrize(
    "header",
    [(b"x-ok", b"a\r\nset-cookie: evil=1"), (b"x-ok\nset-cookie", b"evil"), (b"x-ok", b"a\rb")],
)
async def test_a_response_header_with_cr_or_lf_is_never_written(
    header: tuple[bytes, bytes],
) -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain"), header, (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    async with BackgroundServer(app, http=GatewayProtocol) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /x HTTP/1.1\r\nhost: x\r\n\r\n")
        async with asyncio.timeout(5):
            received = await reader.read()  # until the server closes
        assert b"evil" not in received and b"200 OK" not in received
        writer.close()


# ---------------------------------------------------------------------- limits and timers


def limited_app(fake_upstream: FakeUpstream, store: MemoryTraceStore | None = None, **server: Any):
    models = [{"name": "small", "upstream": "fake", "upstream_model": "s", "context_window": 10**7}]
    config = routing_config(
        fake_upstream.base_url,
        server={"max_body_bytes": 32 * 1024 * 1024, **server},
        models=models,
        decisions=[],
        default={"models": ["small"]},
    )
    return create_app(config, store=store)


async def _answer_and_close(conn: Conn, timeout: float = 5) -> Response:
    (response,) = await conn.read(timeout=timeout)
    assert await conn.closed(timeout=timeout)
    return response


async def _answer_while_trickling(conn: Conn, pieces: list[bytes]) -> Response:
    """Send ``pieces`` one every 100 ms (never idle, never done) until the server answers
    and closes."""

    async def trickle() -> None:
        for piece in pieces:
            await asyncio.sleep(0.1)
            try:
                await conn.send(piece)
            except ConnectionError:
                return

    trickling = asyncio.ensure_future(trickle())
    try:
        return await _answer_and_close(conn)
    finally:
        trickling.cancel()


async def test_a_head_sent_slowly_gets_408(fake_upstream: FakeUpstream) -> None:
    app = limited_app(fake_upstream, header_timeout_s=0.5)
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        await conn.send(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        response = await _answer_while_trickling(conn, [b"x"] * 100)
        conn.close()
    assert response.status == 408
    assert orjson.loads(response.body)["error"]["code"] == "request_timeout"


async def test_a_body_sent_slowly_gets_408(fake_upstream: FakeUpstream) -> None:
    app = limited_app(fake_upstream, body_timeout_s=0.5)
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        whole = post()
        body_at = whole.index(b"\r\n\r\n") + 4
        await conn.send(whole[: body_at + 5])
        rest = whole[body_at + 5 : -1]  # never the last byte
        response = await _answer_while_trickling(conn, [rest[i : i + 1] for i in range(len(rest))])
        conn.close()
    assert response.status == 408


async def test_a_half_sent_head_does_not_hold_an_idle_connection(
    fake_upstream: FakeUpstream,
) -> None:
    app = limited_app(fake_upstream, header_timeout_s=0.5)
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        await conn.send(b"GET /health HTTP/1.1\r\nhost:")  # and then nothing
        response = await _answer_and_close(conn)
        conn.close()
    assert response.status == 408


async def test_a_huge_header_is_refused_while_it_arrives(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unfinished 8 MiB header is answered with 431 after little more than the limit was
    parsed: the limit is checked as bytes arrive, not when a header completes (httptools
    grows an unfinished header by concatenation, quadratic in its length)."""
    parsed = [0]
    feed = GatewayProtocol.data_received

    def counted(self: GatewayProtocol, data: bytes) -> None:
        if not self.lingering:
            parsed[0] += len(data)
        feed(self, data)

    monkeypatch.setattr(GatewayProtocol, "data_received", counted)
    app = limited_app(fake_upstream)
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        await conn.send(b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: ")

        async def flood() -> None:
            try:
                for _ in range(128):  # 8 MiB, never ending the header
                    await conn.send(b"a" * 65536)
            except ConnectionError:
                pass

        flooding = asyncio.ensure_future(flood())
        try:
            (response,) = await conn.read(timeout=10)
        finally:
            flooding.cancel()
        conn.close()
    assert response.status == 431
    assert parsed[0] < 4 * MAX_HEAD_BYTES + 512 * 1024, parsed[0]


async def test_trailers_count_against_the_head_limit(fake_upstream: FakeUpstream) -> None:
    """Trailers of a chunked body are headers too: past ``max_head_bytes`` they get 431,
    whether they arrive in the read that ends the message or in reads of their own."""
    app = limited_app(fake_upstream)
    trailers = b"".join(b"x-t%d: %s\r\n" % (i, b"v" * 20) for i in range(MAX_HEAD_BYTES // 20))
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        for split in (False, True):
            conn = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
            await conn.send(
                b"POST /health HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                b"2\r\nhi\r\n0\r\n" + (b"" if split else trailers + b"\r\n")
            )
            if split:
                await asyncio.sleep(0.05)
                await conn.send(trailers + b"\r\n")
            response = await _answer_and_close(conn)
            conn.close()
            assert response.status == 431


async def test_a_client_that_stops_reading_is_disconnected(fake_upstream: FakeUpstream) -> None:
    import socket

    store = MemoryTraceStore()
    app = limited_app(fake_upstream, store, write_timeout_s=0.5)
    text = "x" * 12_000_000
    body = orjson.dumps(
        {"model": "auto", "stream": True, "messages": [{"role": "user", "content": text}]}
    )
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        conn = Conn(*await asyncio.open_connection(sock=sock))
        await conn.send(post(body))
        async with asyncio.timeout(10):  # never reading: the server gives up on us
            while not store.recent(1):
                await asyncio.sleep(0.05)
        (trace,) = store.recent(1)
        received = await conn.read(timeout=10)
        conn.close()
    assert trace["status"] == 499
    assert not received, "the whole stream was delivered to a client that did not read"


async def test_a_client_that_never_reads_a_json_answer_is_disconnected(
    fake_upstream: FakeUpstream,
) -> None:
    """A complete answer sits in the write buffer of a client that stops reading: the
    connection is dropped when the write timeout passes, not held forever."""
    import socket

    app = limited_app(fake_upstream, write_timeout_s=0.5)
    body = orjson.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": "y" * 8_000_000}]}
    )
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        conn = Conn(*await asyncio.open_connection(sock=sock))
        await conn.send(post(body))
        connections = server._server.server_state.connections
        async with asyncio.timeout(10):
            while not connections:
                await asyncio.sleep(0.02)
            while connections:
                await asyncio.sleep(0.05)
        conn.close()


async def test_connections_over_the_cap_get_503(fake_upstream: FakeUpstream) -> None:
    app = limited_app(fake_upstream, max_connections=2)
    async with BackgroundServer(app, http=GatewayProtocol, lifespan="on") as server:
        held = [Conn(*await asyncio.open_connection("127.0.0.1", server.port)) for _ in range(2)]
        for conn in held:
            await conn.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            (response,) = await conn.read()
            assert response.status == 200
        extra = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        response = await _answer_and_close(extra)
        assert response.status == 503
        assert orjson.loads(response.body)["error"]["code"] == "too_many_connections"
        held.pop().close()
        async with asyncio.timeout(5):
            while len(server._server.server_state.connections) > 1:
                await asyncio.sleep(0.02)
        again = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        await again.send(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        (response,) = await again.read()
        assert response.status == 200
        for conn in (*held, extra, again):
            conn.close()


async def test_at_shutdown_a_request_on_its_way_is_answered_and_an_idle_connection_closed(
    fake_upstream: FakeUpstream,
) -> None:
    """A worker replaced (a rolling restart) must not drop a connection it has just
    accepted, nor one whose head is arriving: their request is served with a close; a
    keep-alive connection that has been answered and is idle is closed at once."""
    app = create_app(routing_config(fake_upstream.base_url))
    server = BackgroundServer(app, http=GatewayProtocol, lifespan="on")
    await server.__aenter__()
    try:
        fresh = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        partial = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        idle = Conn(*await asyncio.open_connection("127.0.0.1", server.port))
        await idle.send(post())
        assert (await idle.read())[0].status == 200
        await partial.send(post()[:30])
        await asyncio.sleep(0.1)  # all three accepted
        stopping = asyncio.ensure_future(asyncio.to_thread(server.stop))
        assert await idle.closed(timeout=2)
        await fresh.send(post())
        await partial.send(post()[30:])
        for conn in (fresh, partial):
            (response,) = await conn.read()
            assert response.status == 200, response.body
            assert response.headers["connection"] == "close"
            assert await conn.closed(timeout=2)
            conn.close()
        idle.close()
        await stopping
    finally:
        await asyncio.to_thread(server.stop)
