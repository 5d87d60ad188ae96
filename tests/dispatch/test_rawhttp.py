"""The raw HTTP/1.1 client against loopback servers whose answers each test writes by hand."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from crossroads.config import OpenAIUpstreamConfig, Timeouts
from crossroads.dispatch.openai import OpenAIUpstream
from crossroads.dispatch.rawhttp import ConnectionPool
from crossroads.dispatch.rawhttp import connection as raw_connection
from crossroads.dispatch.retries import is_retryable
from crossroads.dispatch.sse import split_events
from crossroads.exceptions import (
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.raw_upstream import (
    Conn,
    Script,
    echo_forever,
    endless_informational,
    gzip_bomb,
    header_flood,
    huge_body,
    huge_header,
    leftovers,
)

HEADERS = {"content-type": "application/json", "authorization": "Bearer k"}


def pool_for(script: Script, **timeouts: float) -> ConnectionPool:
    return ConnectionPool(
        "127.0.0.1",
        script.port,
        name="up",
        timeouts=Timeouts(**{"connect": 2, "first_byte": 2, "read": 2, "total": 5, **timeouts}),
        max_connections=4,
    )


@pytest.fixture
async def echo() -> AsyncIterator[Script]:
    async with Script(echo_forever) as script:
        yield script


async def test_keep_alive_reuses_one_connection_and_sends_one_prebuilt_head(echo: Script) -> None:
    pool = pool_for(echo)
    head = pool.request_head("POST", "/v1/chat/completions?api-version=1", HEADERS)
    assert head.startswith(b"POST /v1/chat/completions?api-version=1 HTTP/1.1\r\n")
    assert b"\r\nauthorization: Bearer k\r\n" in head and head.endswith(b"content-length: ")
    for i in range(5):
        status, _, body = await pool.fetch(head, b'{"n": %d}' % i)
        assert (status, body) == (200, b'{"n": %d}' % i)
    assert echo.connections == 1 and pool.open_connections == 1 and pool.idle_connections == 1
    await pool.aclose()


async def test_pool_limit_makes_calls_wait_for_a_free_connection() -> None:
    busy = 0
    peak = 0

    async def slow(conn: Conn) -> None:
        nonlocal busy, peak
        while (req := await conn.request()) is not None:
            busy += 1
            peak = max(peak, busy)
            await asyncio.sleep(0.03)
            busy -= 1
            await conn.answer(req[1])

    async with Script(slow) as script:
        pool = pool_for(script)
        pool.max_connections = 2
        head = pool.request_head("POST", "/x", HEADERS)
        bodies = await asyncio.gather(*(pool.fetch(head, b"%d" % i) for i in range(8)))
        assert [b for _, _, b in bodies] == [b"%d" % i for i in range(8)]
        assert script.connections == 2 and peak == 2
        await pool.aclose()


async def test_waiting_for_a_connection_is_bounded_by_the_connect_timeout() -> None:
    async def hang(conn: Conn) -> None:
        await conn.request()
        await asyncio.sleep(10)

    async with Script(hang) as script:
        pool = pool_for(script, connect=0.2)
        pool.max_connections = 1
        head = pool.request_head("POST", "/x", HEADERS)
        first = asyncio.ensure_future(pool.fetch(head, b"{}"))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamTimeoutError, match=r"timeouts.connect \(0.2 s; 1 of max_c"):
            await pool.fetch(head, b"{}")
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await pool.aclose()


async def test_chunked_and_content_length_bodies() -> None:
    async def mixed(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"hello ", b"chunked ", b"world"):
            await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            await asyncio.sleep(0.01)
        await conn.send(b"0\r\n\r\n")
        await conn.request()
        await conn.answer(b"by length")
        await echo_forever(conn)

    async with Script(mixed) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        assert (await pool.fetch(head, b""))[2] == b"hello chunked world"
        assert (await pool.fetch(head, b""))[2] == b"by length"
        assert script.connections == 1
        await pool.aclose()


async def test_stream_delivers_each_chunk_as_it_arrives() -> None:
    go_on = asyncio.Event()

    async def two_steps(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await conn.send(b"6\r\nfirst\n\r\n")
        await go_on.wait()  # the client must see "first" before "second" is even written
        await conn.send(b"7\r\nsecond\n\r\n0\r\n\r\n")
        await echo_forever(conn)

    async with Script(two_steps) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        response = await pool.open(head, b"{}")
        assert response.status == 200
        assert await anext(response) == b"first\n"
        go_on.set()
        assert [chunk async for chunk in response] == [b"second\n"]
        response.close()
        assert pool.idle_connections == 1  # read to the end: back in the pool
        assert (await pool.fetch(head, b"again"))[2] == b"again"
        assert script.connections == 1
        await pool.aclose()


async def test_stream_that_saw_its_end_waits_for_the_trailing_terminator() -> None:
    async def late_terminator(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await conn.send(b"e\r\ndata: [DONE]\n\n\r\n")
        await asyncio.sleep(0.05)
        await conn.send(b"0\r\n\r\n")
        await echo_forever(conn)

    async with Script(late_terminator) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        response = await pool.open(head, b"{}")
        assert await anext(response) == b"data: [DONE]\n\n"
        response.close(reuse=True)
        assert pool.idle_connections == 0 and pool.open_connections == 1
        await asyncio.sleep(0.1)  # the terminator arrives: the connection is idle again
        assert pool.idle_connections == 1
        assert (await pool.fetch(head, b"next"))[2] == b"next"
        assert script.connections == 1
        await pool.aclose()


async def test_abandoned_stream_closes_its_connection() -> None:
    async def endless(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            await conn.send(b"2\r\nx\n\r\n")
            await asyncio.sleep(0.01)

    async with Script(endless) as script:
        pool = pool_for(script)
        response = await pool.open(pool.request_head("POST", "/x", HEADERS), b"{}")
        await anext(response)
        response.close(reuse=True)  # not at its end: even "reuse" must not keep it
        await asyncio.wait_for(script.closed_by_client.wait(), 2)
        assert pool.open_connections == 0
        await pool.aclose()


async def test_first_byte_timeout() -> None:
    async def silent(conn: Conn) -> None:
        await conn.request()
        await asyncio.sleep(10)

    async with Script(silent) as script:
        pool = pool_for(script, first_byte=0.15)
        head = pool.request_head("POST", "/x", HEADERS)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimeoutError, match=r"timeouts.first_byte \(0.15 s\)"):
            await pool.fetch(head, b"{}")
        assert 0.1 < loop.time() - started < 1.0
        await asyncio.sleep(0.01)
        assert pool.open_connections == 0  # a timed-out connection is never reused
        await pool.aclose()


async def test_a_reused_connection_times_its_call_from_the_call_not_the_first_one() -> None:
    """A warm connection's timer outlives each call and is taken over by the next: a call
    that the server then leaves unanswered still times out after first_byte, and one that
    starts after an earlier call's deadline has passed is not cut at that deadline."""

    async def answer_twice_then_hang(conn: Conn) -> None:
        for _ in range(2):
            req = await conn.request()
            assert req is not None
            await conn.answer(req[1])
        await conn.request()
        await asyncio.sleep(10)

    async with Script(answer_twice_then_hang) as script:
        pool = pool_for(script, first_byte=0.3)
        head = pool.request_head("POST", "/x", HEADERS)
        assert (await pool.fetch(head, b"1"))[2] == b"1"
        await asyncio.sleep(0.25)  # the first call's first_byte deadline passes during the next
        assert (await pool.fetch(head, b"2"))[2] == b"2"
        with pytest.raises(UpstreamTimeoutError, match=r"timeouts.first_byte \(0.3 s\)"):
            await pool.fetch(head, b"3")
        assert script.connections == 1
        await pool.aclose()


async def test_stream_first_byte_runs_until_the_first_body_byte() -> None:
    async def head_only(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await asyncio.sleep(10)

    async with Script(head_only) as script:
        pool = pool_for(script, first_byte=0.15, read=5)
        response = await pool.open(pool.request_head("POST", "/x", HEADERS), b"{}")
        with pytest.raises(UpstreamTimeoutError, match="first_byte"):
            await anext(response)
        response.close()
        await pool.aclose()


async def test_read_timeout_is_the_longest_silence_between_chunks() -> None:
    async def drip_then_stop(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        for _ in range(5):  # 0.5 s in total, but never 0.2 s of silence
            await conn.send(b"x")
            await asyncio.sleep(0.1)
        await asyncio.sleep(10)

    async with Script(drip_then_stop) as script:
        pool = pool_for(script, read=0.2)
        head = pool.request_head("POST", "/x", HEADERS)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimeoutError, match=r"timeouts.read \(0.2 s\)"):
            await pool.fetch(head, b"{}")
        assert 0.5 < loop.time() - started < 1.5
        await pool.aclose()


async def drip(conn: Conn) -> None:
    """A 200 whose chunked body never ends: one byte every 20 ms."""
    await conn.request()
    await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    while True:
        await conn.send(b"1\r\nx\r\n")
        await asyncio.sleep(0.02)


async def test_total_timeout_ends_a_response_that_keeps_dripping() -> None:
    async with Script(drip) as script:
        pool = pool_for(script, read=1, total=0.3)
        response = await pool.open(pool.request_head("POST", "/x", HEADERS), b"{}")
        with pytest.raises(UpstreamTimeoutError, match=r"timeouts.total \(0.3 s\)"):
            async for _ in response:
                pass
        response.close()
        await pool.aclose()


async def test_a_deadline_shorter_than_the_total_timeout_ends_the_call_and_says_so() -> None:
    async with Script(drip) as script:
        pool = pool_for(script, read=1, total=5)
        head = pool.request_head("POST", "/x", HEADERS)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimeoutError, match="within the dispatch deadline"):
            await asyncio.wait_for(pool.fetch(head, b"{}", within=0.3), 4)
        assert loop.time() - started < 2  # the deadline, not timeouts.total (5 s)
        # a deadline longer than timeouts.total leaves the total in charge
        short = pool_for(script, total=0.3)
        with pytest.raises(UpstreamTimeoutError, match=r"timeouts.total \(0.3 s\)"):
            await asyncio.wait_for(short.fetch(head, b"{}", within=60), 4)
        await pool.aclose()
        await short.aclose()


async def test_slow_consumer_pauses_reading_and_read_timeout_does_not_fire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(raw_connection, "HIGH_WATER", 1024)
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def big(conn: Conn) -> None:
        await conn.request()
        await conn.answer(payload)
        await echo_forever(conn)

    async with Script(big) as script:
        pool = pool_for(script, read=0.1)
        head = pool.request_head("POST", "/x", HEADERS)
        response = await pool.open(head, b"{}")
        received = [await anext(response)]
        await asyncio.sleep(0.3)  # longer than read: we are slow, not the upstream
        conn = response._conn
        assert conn is not None and conn.paused
        received += [chunk async for chunk in response]
        assert b"".join(received) == payload
        response.close()
        assert (await pool.fetch(head, b"ok"))[2] == b"ok" and script.connections == 1
        await pool.aclose()


async def test_server_closing_an_idle_connection_does_not_fail_the_next_call() -> None:
    async def one_per_connection(conn: Conn) -> None:
        req = await conn.request()
        assert req is not None
        await conn.answer(req[1])  # keep-alive promised, then closed while idle
        conn.writer.close()

    async with Script(one_per_connection) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        for i in range(3):
            assert (await pool.fetch(head, b"%d" % i))[2] == b"%d" % i
            await asyncio.sleep(0.05)  # the close arrives while the connection idles
        assert script.connections == 3
        await pool.aclose()


async def test_close_racing_the_request_on_a_reused_connection_is_retried_once() -> None:
    async def closes_second_request(conn: Conn) -> None:
        req = await conn.request()
        if req is None:
            return
        await conn.answer(req[1])
        await conn.request()  # the close raced our request: nothing answered
        conn.writer.close()

    async with Script(closes_second_request) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        assert (await pool.fetch(head, b"a"))[2] == b"a"
        assert (await pool.fetch(head, b"b"))[2] == b"b"  # resent on a new connection
        assert script.connections == 2
        await pool.aclose()


async def test_close_before_answering_on_a_new_connection_is_not_retried() -> None:
    async def refuse(conn: Conn) -> None:
        await conn.request()
        conn.writer.close()

    async with Script(refuse) as script:
        pool = pool_for(script)
        with pytest.raises(UpstreamProtocolError, match="closed the connection before finishing"):
            await pool.fetch(pool.request_head("POST", "/x", HEADERS), b"{}")
        assert script.connections == 1
        await pool.aclose()


async def test_close_mid_body_is_a_protocol_error() -> None:
    async def truncated(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        conn.writer.close()

    async with Script(truncated) as script:
        pool = pool_for(script)
        with pytest.raises(UpstreamProtocolError, match="closed the connection before finishing"):
            await pool.fetch(pool.request_head("POST", "/x", HEADERS), b"{}")
        await pool.aclose()


async def test_garbage_is_a_protocol_error() -> None:
    async def garbage(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"SMTP ready\r\n\r\n")

    async with Script(garbage) as script:
        pool = pool_for(script)
        with pytest.raises(UpstreamProtocolError, match="not valid HTTP/1.1"):
            await pool.fetch(pool.request_head("POST", "/x", HEADERS), b"{}")
        await pool.aclose()


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the block ends
    pool = ConnectionPool("127.0.0.1", port, name="up", timeouts=Timeouts())
    with pytest.raises(
        UpstreamConnectError, match=f"could not connect to upstream 'up' at 127.0.0.1:{port}"
    ):
        await pool.fetch(pool.request_head("POST", "/x", HEADERS), b"{}")
    assert pool.open_connections == 0
    await pool.aclose()


async def test_cancelled_call_closes_its_connection() -> None:
    async def hang(conn: Conn) -> None:
        await conn.request()
        await conn.reader.read()  # until the client leaves

    async with Script(hang) as script:
        pool = pool_for(script)
        call = asyncio.ensure_future(pool.fetch(pool.request_head("POST", "/x", HEADERS), b"{}"))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(script.closed_by_client.wait(), 2)  # the server saw us leave
        assert pool.open_connections == 0 and pool.idle_connections == 0
        await pool.aclose()


async def test_connection_close_header_is_honoured() -> None:
    async def closing(conn: Conn) -> None:
        req = await conn.request()
        assert req is not None
        await conn.answer(req[1], extra=b"connection: close\r\n")

    async with Script(closing) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        assert (await pool.fetch(head, b"1"))[2] == b"1"
        assert (await pool.fetch(head, b"2"))[2] == b"2"
        assert script.connections == 2
        await pool.aclose()


async def test_an_informational_head_is_skipped() -> None:
    async def continue_first(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 100 Continue\r\nx-early: 1\r\n\r\n")
        await conn.answer(b"ok", extra=b"x-late: 2\r\n")
        await echo_forever(conn)

    async with Script(continue_first) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        status, headers, body = await pool.fetch(head, b"{}")
        assert (status, body, dict(headers)) == (200, b"ok", {"content-length": "2", "x-late": "2"})
        assert (await pool.fetch(head, b"again"))[2] == b"again"
        await pool.aclose()


async def test_error_status_headers_are_case_insensitive() -> None:
    async def limited(conn: Conn) -> None:
        await conn.request()
        await conn.answer(
            b'{"error": {}}', 429, b"Retry-After: 7\r\nContent-Type: application/json\r\n"
        )
        await echo_forever(conn)

    async with Script(limited) as script:
        pool = pool_for(script)
        status, headers, _ = await pool.fetch(pool.request_head("POST", "/x", HEADERS), b"{}")
        assert status == 429 and headers["retry-after"] == "7"
        assert headers.get("CONTENT-TYPE") == "application/json" and headers.get("x") is None
        assert script.connections == 1
        await pool.aclose()


@pytest.mark.parametrize("chunked", [False, True])
async def test_big_bodies_both_ways(echo: Script, chunked: bool) -> None:
    payload = b"".join(b"%08d" % i for i in range(500_000))  # 4 MB

    async def big_answer(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            assert req[1] == payload
            if chunked:
                await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                for i in range(0, len(payload), 100_000):
                    piece = payload[i : i + 100_000]
                    await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                await conn.send(b"0\r\n\r\n")
            else:
                await conn.answer(payload)

    async with Script(big_answer) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        for _ in range(2):
            status, _, body = await pool.fetch(head, payload)
            assert status == 200 and body == payload
        assert script.connections == 1
        await pool.aclose()


async def test_non_ascii_bodies_and_headers(echo: Script) -> None:
    pool = pool_for(echo)
    head = pool.request_head("POST", "/x", {**HEADERS, "x-note": "café"})
    assert "x-note: café".encode() in head
    body = '{"content": "héllo wörld ✓ 你好 🎉"}'.encode()
    status, _, answer = await pool.fetch(head, body)
    assert status == 200 and answer.decode() == body.decode()
    await pool.aclose()


def test_request_head_refuses_header_injection() -> None:
    async def build() -> None:
        pool = ConnectionPool("127.0.0.1", 1, name="up", timeouts=Timeouts())
        pool.request_head("POST", "/x", {"x-bad": "a\r\nhost: evil"})

    with pytest.raises(ValueError, match="CR/LF"):
        asyncio.run(build())


async def test_openai_upstream_serves_http_urls_on_one_raw_connection(
    fake_upstream: FakeUpstream,
) -> None:
    upstream = OpenAIUpstream(OpenAIUpstreamConfig(name="fake", base_url=fake_upstream.base_url))
    body = {"model": "s", "messages": [{"role": "user", "content": "héllo ✓"}]}
    for _ in range(3):
        completion = await upstream.complete("chat", body)
        assert orjson.loads(completion.body)["choices"][0]["message"]["content"] == "echo: héllo ✓"
        batches = [f async for f in upstream.stream("chat", {**body, "stream": True})]
        events = [e for b in batches for e in split_events(b)]
        assert events[-1] == b"data: [DONE]\n\n" and len(events) == 6
    await asyncio.sleep(0.05)  # a stream's chunked terminator may trail its [DONE]
    assert upstream._session is None and upstream._pool is not None
    assert upstream._pool.open_connections == 1
    await upstream.aclose()


async def test_openai_upstream_keeps_aiohttp_when_asked_or_for_https(
    monkeypatch: pytest.MonkeyPatch, fake_upstream: FakeUpstream
) -> None:
    https = OpenAIUpstream(OpenAIUpstreamConfig(name="tls", base_url="https://api.example/v1"))
    assert https._raw_address is None
    upstream = OpenAIUpstream(
        OpenAIUpstreamConfig(name="fake", base_url=fake_upstream.base_url, http_client="aiohttp")
    )
    body = {"model": "s", "messages": [{"role": "user", "content": "hi"}]}
    assert (await upstream.complete("chat", body)).usage is not None
    assert upstream._pool is None and upstream._session is not None
    await upstream.aclose()


async def test_mixed_faults_under_concurrency_leave_a_consistent_pool() -> None:
    """300 calls, 48 at a time on at most 8 connections, a fifth of them failing in
    assorted ways: every call ends, and afterwards every open connection is idle."""
    from crossroads.exceptions import UpstreamError

    faults = ["refuse", "truncated_body", "cut_stream:2", "500", "malformed_json"]
    with FakeUpstream(models=["s"], chunks=3) as fake:
        config = OpenAIUpstreamConfig(
            name="fake", base_url=fake.base_url, max_connections=8, timeouts={"total": 10}
        )
        upstream = OpenAIUpstream(config)
        gate = asyncio.Semaphore(48)
        outcomes: dict[str, int] = {}

        async def one(i: int) -> None:
            fault = faults[(i // 5) % len(faults)] if i % 5 == 0 else None
            body: dict[str, Any] = {"model": "s", "messages": [{"role": "user", "content": "x"}]}
            if fault:
                body["metadata"] = {"fault": fault}
            async with gate:
                try:
                    if i % 2:
                        await upstream.complete("chat", body)
                    else:
                        async for _ in upstream.stream("chat", {**body, "stream": True}):
                            pass
                    key = "ok"
                except UpstreamError as exc:
                    key = type(exc).__name__
            outcomes[key] = outcomes.get(key, 0) + 1

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(300))), 60)
        pool = upstream._pool
        assert pool is not None
        await asyncio.sleep(0.1)
        assert 0 < pool.open_connections <= 8
        assert pool.open_connections == pool.idle_connections
        assert outcomes["ok"] >= 240 and sum(outcomes.values()) == 300
        await upstream.aclose()


@pytest.mark.parametrize("client", ["raw", "aiohttp"])
@pytest.mark.parametrize(
    ("fault", "complete_error", "stream_error"),
    [
        ("500", "UpstreamStatusError", "UpstreamStatusError"),
        ("malformed_json", "UpstreamProtocolError", None),  # a stream's events pass as bytes
        ("truncated_body", "UpstreamProtocolError", "UpstreamProtocolError"),
        ("cut_stream:2", "UpstreamProtocolError", "UpstreamProtocolError"),
        ("hang", "UpstreamTimeoutError", "UpstreamTimeoutError"),
    ],
)
async def test_both_http_clients_map_faults_alike(
    fake_upstream: FakeUpstream,
    client: str,
    fault: str,
    complete_error: str | None,
    stream_error: str | None,
) -> None:
    """The raw client and aiohttp turn each upstream failure into the same error."""
    from crossroads.exceptions import UpstreamError

    config = OpenAIUpstreamConfig(
        name="fake",
        base_url=fake_upstream.base_url,
        http_client=client,
        timeouts={"first_byte": 0.3, "read": 0.3, "total": 2},
    )
    upstream = OpenAIUpstream(config)
    body: dict[str, Any] = {
        "model": "s",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"fault": fault},
    }

    async def outcome(call: Any) -> str | None:
        try:
            await asyncio.wait_for(call(), 5)
        except UpstreamError as exc:
            return type(exc).__name__
        return None

    async def complete() -> None:
        await upstream.complete("chat", body)

    async def stream() -> None:
        async for _ in upstream.stream("chat", {**body, "stream": True}):
            pass

    try:
        assert await outcome(complete) == complete_error
        assert await outcome(stream) == stream_error
    finally:
        await upstream.aclose()


# ---------------------------------------------------------------- a misbehaving upstream


async def _fails_and_discards(script: Script, match: str, **timeouts: float) -> None:
    pool = pool_for(script, **timeouts)
    head = pool.request_head("POST", "/x", HEADERS)
    with pytest.raises(UpstreamProtocolError, match=match) as caught:
        await asyncio.wait_for(pool.fetch(head, b"{}"), 5)
    assert caught.value.upstream == "up" and is_retryable(caught.value)  # the endpoint's fault
    await asyncio.sleep(0.05)
    assert pool.open_connections == 0  # never reused
    await pool.aclose()


@pytest.mark.parametrize(
    "handler",
    [header_flood(100_000), header_flood(raw_connection.MAX_HEADERS + 1), huge_header(1 << 20)],
    ids=["flood", "too-many", "one-huge"],
)
async def test_an_oversized_response_head_is_refused(handler: Any) -> None:
    async with Script(handler) as script:
        await _fails_and_discards(script, "response head")


async def test_a_head_at_the_limits_is_accepted() -> None:
    async with Script(header_flood(raw_connection.MAX_HEADERS - 1, then_echo=True)) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        status, headers, body = await pool.fetch(head, b"{}")
        assert (status, body, len(headers)) == (200, b"ok", raw_connection.MAX_HEADERS)
        assert (await pool.fetch(head, b"next"))[2] == b"next"
        await pool.aclose()


async def test_a_declared_body_over_the_limit_fails_on_the_head() -> None:
    async with Script(huge_body(1 << 30)) as script:  # content-length: 1 GiB, then silence
        await _fails_and_discards(script, "max_response_bytes", read=30, total=30)


async def test_a_chunked_body_over_the_limit_fails_once_it_passes_it() -> None:
    async with Script(huge_body(4 << 20, chunked=True)) as script:
        pool = ConnectionPool(
            "127.0.0.1", script.port, name="up", timeouts=Timeouts(), max_response_bytes=1 << 20
        )
        with pytest.raises(UpstreamProtocolError, match=r"max_response_bytes \(1048576 bytes\)"):
            await asyncio.wait_for(pool.fetch(pool.request_head("POST", "/x", HEADERS), b""), 5)
        await asyncio.sleep(0.05)
        assert pool.open_connections == 0
        await pool.aclose()


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"br"])
async def test_a_compressed_body_is_refused(encoding: bytes) -> None:
    async with Script(gzip_bomb(64 << 20, encoding)) as script:
        await _fails_and_discards(script, "content-encoding")


async def test_an_uncompressed_body_may_say_identity() -> None:
    async def identity(conn: Conn) -> None:
        await conn.request()
        await conn.answer(b"plain", extra=b"content-encoding: identity\r\n")

    async with Script(identity) as script:
        pool = pool_for(script)
        assert (await pool.fetch(pool.request_head("POST", "/x", HEADERS), b""))[2] == b"plain"
        await pool.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_bytes_after_a_complete_response_never_reach_the_next_call(stream: bool) -> None:
    async with Script(leftovers()) as script:
        pool = pool_for(script)
        head = pool.request_head("POST", "/x", HEADERS)
        if stream:
            response = await pool.open(head, b"first")
            assert (response.status, await response.read()) == (200, b"first")
            response.close(reuse=True)
        else:
            assert (await pool.fetch(head, b"first"))[::2] == (200, b"first")
        for body in (b"second", b"third"):
            status, headers, answer = await pool.fetch(head, body)
            assert (status, answer, headers["content-length"]) == (200, body, str(len(body)))
        assert script.connections == 2  # the out-of-step connection was closed
        await pool.aclose()


@pytest.mark.parametrize("status", [100, 103])
async def test_endless_informational_heads_fail(status: int) -> None:
    async with Script(endless_informational(status)) as script:
        await _fails_and_discards(script, "informational", first_byte=30, total=30)


async def test_slow_informational_heads_are_bounded_by_first_byte() -> None:
    async with Script(endless_informational(103, pause_s=0.05)) as script:
        pool = pool_for(script, first_byte=0.3)
        with pytest.raises(UpstreamTimeoutError, match="first_byte"):
            await asyncio.wait_for(pool.fetch(pool.request_head("POST", "/x", HEADERS), b""), 5)
        await pool.aclose()


async def test_an_error_answering_a_stream_is_read_whole_within_the_limit() -> None:
    async def errors(conn: Conn) -> None:
        await conn.request()
        await conn.answer(b'{"error": {"message": "busy"}}', 503)
        await conn.request()
        await conn.send(b"HTTP/1.1 500 X\r\ncontent-length: %d\r\n\r\n{" % (1 << 30))
        await asyncio.sleep(10)

    async with Script(errors) as script:
        pool = pool_for(script, read=30, total=30)
        head = pool.request_head("POST", "/x", HEADERS)
        response = await pool.open(head, b"{}")
        assert (response.status, await response.read()) == (503, b'{"error": {"message": "busy"}}')
        response.close()
        with pytest.raises(UpstreamProtocolError, match="max_response_bytes"):
            await asyncio.wait_for(pool.open(head, b"{}"), 5)
        await pool.aclose()
