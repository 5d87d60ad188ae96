"""The gateway in process (ASGI transport) against a fake upstream on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from crossroads.exceptions import StoreError
from crossroads.gateway import create_app
from crossroads.gateway.protocol import GatewayProtocol
from crossroads.store import batched
from crossroads.store import sqlite as sqlite_store
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.server_thread import BackgroundServer

CHAT = "/v1/chat/completions"


class _SettledStore:
    """Over a socket, the client may read a response a moment before its trace is recorded."""

    def __init__(self, store: MemoryTraceStore) -> None:
        self.store = store

    def get(self, trace_id: str) -> dict[str, Any] | None:
        for _ in range(200):
            trace = self.store.get(trace_id)
            if trace is not None:
                return trace
            time.sleep(0.005)
        return None


@pytest.fixture(params=["asgi", "protocol"])
async def gateway(
    request: pytest.FixtureRequest, fake_upstream: FakeUpstream
) -> AsyncIterator[tuple[httpx.AsyncClient, Any, FakeUpstream]]:
    """The gateway in process (ASGI), and served over loopback by its own HTTP protocol."""
    store = MemoryTraceStore()
    app = create_app(
        routing_config(fake_upstream.base_url, server={"max_body_bytes": 64 * 1024}), store=store
    )
    if request.param == "asgi":
        await app.startup()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=20
        ) as client:
            yield client, store, fake_upstream
        await app.shutdown()
        return
    server = BackgroundServer(app, http=GatewayProtocol, lifespan="on")
    async with server, httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        yield client, _SettledStore(store), fake_upstream


def msg(text: str = "hello", **body: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **body}


def sse_events(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


async def test_routes_and_answers_with_headers_and_trace(gateway) -> None:
    client, store, _ = gateway
    r = await client.post(CHAT, json=msg("write some python"))
    assert r.status_code == 200
    assert r.headers["x-crossroads-model"] == "big"
    assert r.headers["x-crossroads-decision"] == "coding"
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "echo: write some python"
    assert body["model"] == "b"  # the upstream's model id
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["route"]["model"] == "big" and trace["status"] == 200
    assert trace["route"]["rule_path"] == ["coding: keyword:code=T"]
    assert trace["route"]["signals"]["keyword:code"]["matched"] is True
    assert trace["usage"]["completion_tokens"] > 0
    # cost = usage x price of the chosen model
    expected = (
        trace["usage"]["prompt_tokens"] * 3.0 + trace["usage"]["completion_tokens"] * 15.0
    ) / 1e6
    assert trace["cost"] == pytest.approx(expected)
    assert {c["model"] for c in trace["route"]["candidates"]} == {"big"}


async def test_default_decision_and_explicit_model(gateway) -> None:
    client, store, _ = gateway
    r = await client.post(CHAT, json=msg("hi"))
    assert (r.headers["x-crossroads-model"], r.headers["x-crossroads-decision"]) == (
        "small",
        "default",
    )
    r = await client.post(CHAT, json={**msg("hi"), "model": "big"})
    assert (r.headers["x-crossroads-model"], r.headers["x-crossroads-decision"]) == (
        "big",
        "explicit",
    )


async def test_stream_passes_chunks_and_strips_usage_the_client_did_not_ask_for(gateway) -> None:
    client, store, _ = gateway
    r = await client.post(CHAT, json=msg("hi", stream=True))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["choices"] for c in chunks), "usage-only chunk must be stripped"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "echo: hi"
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["stream"] is True and trace["usage"]["completion_tokens"] > 0 and trace["cost"] > 0
    assert trace["ttft_ms"] is not None and trace["ttft_ms"] <= trace["latency_ms"]


async def test_stream_keeps_usage_when_asked(gateway) -> None:
    client, _, _ = gateway
    r = await client.post(CHAT, json=msg("hi", stream=True, stream_options={"include_usage": True}))
    events = sse_events(r.text)
    usage_chunks = [e for e in events[:-1] if e.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []


async def test_completions_endpoint(gateway) -> None:
    client, _, _ = gateway
    r = await client.post(
        "/v1/completions", json={"model": "auto", "prompt": "Once upon a time", "max_tokens": 5}
    )
    assert r.status_code == 200 and r.json()["choices"][0]["text"]


async def test_models_list_and_get(gateway) -> None:
    client, _, _ = gateway
    ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
    assert ids == ["auto", "small", "big"]
    assert (await client.get("/v1/models/auto")).json()["id"] == "auto"
    r = await client.get("/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


async def test_health_and_ready(gateway) -> None:
    client, _, _ = gateway
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["traces"]["writer_alive"] is True
    assert ready.json()["traces"]["dropped"] == 0


async def test_ready_is_503_when_the_trace_writer_died(
    fake_upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("the writer cannot start")

    monkeypatch.setattr(batched, "_lower_priority", broken)
    store = sqlite_store.SQLiteTraceStore(tmp_path / "t.db")
    app = create_app(routing_config(fake_upstream.base_url), store=store)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=20
    ) as client:
        for _ in range(500):  # the writer thread dies a moment after start
            r = await client.get("/ready")
            if r.status_code != 200:
                break
            await asyncio.sleep(0.01)
    await app.shutdown()
    assert r.status_code == 503
    assert r.json()["store"] is False and r.json()["traces"]["writer_alive"] is False


async def test_a_corrupted_trace_file_fails_start_up_clearly(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "t.db"
    path.write_bytes(b"garbage" * 1000)
    cfg = routing_config(fake_upstream.base_url, store={"traces": f"sqlite:///{path}"})
    with pytest.raises(StoreError, match="cannot open trace store .*not a database"):
        await create_app(cfg).startup()


@pytest.mark.parametrize(
    ("body", "status", "param", "fragment"),
    [
        (b"{", 400, None, "not valid JSON"),
        (b"", 400, None, "empty"),
        (b"[1, 2]", 400, None, "must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model", "required"),
        (b'{"model": "auto"}', 400, "messages", "required"),
        (b'{"model": "auto", "messages": []}', 400, "messages", "at least 1"),
        (b'{"model": "auto", "messages": "hello"}', 400, "messages", "valid list"),
        (
            b'{"model": "auto", "messages": [{"role": "bot", "content": "x"}]}',
            400,
            "messages[0].role",
            "'user'",
        ),
        (b'{"model": "auto", "messages": [{"content": "x"}]}', 400, "messages[0].role", "required"),
        (
            b'{"model": "auto", "messages": [{"role": "user"}]}',
            400,
            "messages[0]",
            "needs 'content'",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "tool", "content": "x"}]}',
            400,
            "messages[0]",
            "tool_call_id",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": 5}]}',
            400,
            "messages[0].content",
            "",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": 3}',
            400,
            "temperature",
            "less than or equal to 2",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            400,
            "max_tokens",
            "greater than or equal to 1",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "stream",
            "boolean",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}',
            400,
            "tools[0].function",
            "required",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}',
            400,
            "response_format.type",
            "json_object",
        ),
        (b'{"model": 42, "messages": [{"role": "user", "content": "x"}]}', 400, "model", "string"),
        (  # a refusal part whose refusal is not text (was a 500: the text join failed)
            b'{"model": "auto", "messages": [{"role": "assistant", "content": [{"type": "refusal", "refusal": {"a": 1}}]}, {"role": "user", "content": "x"}]}',
            400,
            "messages[0].content[0]",
            "valid string",
        ),
        (  # an image URL that is not text (was a 500)
            b'{"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]}',
            400,
            "messages[0].content[0].url",
            "valid string",
        ),
        (
            b'{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model",
            "does not exist",
        ),
    ],
)
async def test_bad_input_gets_openai_error_naming_the_field(
    gateway, body: bytes, status: int, param: str | None, fragment: str
) -> None:
    client, store, _ = gateway
    r = await client.post(CHAT, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert fragment in error["message"]
    assert "Traceback" not in r.text
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["status"] == status


async def test_huge_body_is_413_before_reading_it(gateway) -> None:
    client, _, _ = gateway
    r = await client.post(CHAT, json=msg("x" * 100_000))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert "max_body_bytes" in r.json()["error"]["message"]


async def test_wrong_method_and_unknown_path(gateway) -> None:
    client, _, _ = gateway
    assert (await client.get(CHAT)).status_code == 405
    r = await client.post("/v1/embeddingz", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_no_candidate_fits(gateway) -> None:
    client, _, _ = gateway
    r = await client.post(CHAT, json={**msg("hi"), "model": "auto", "max_tokens": 200_000})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_candidate"
    assert "context window" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fault", "status", "code", "client_says", "trace_says"),
    [
        ("500", 502, "upstream_status", "(upstream status 5xx)", "failed (500)"),
        ("503", 503, "upstream_status", "(upstream status 5xx)", "unavailable (503)"),
        ("429:7", 429, "upstream_status", "rate limiting (429)", "injected fault 429"),
        ("malformed_json", 502, "upstream_protocol", "could not read", "invalid JSON"),
        ("truncated_body", 502, "upstream_protocol", "could not read", "closed the connection"),
        ("refuse", 502, "upstream_protocol", "could not read", "closed the connection"),
    ],
)
async def test_upstream_failures_are_mapped_and_explained(
    gateway, fault: str, status: int, code: str, client_says: str, trace_says: str
) -> None:
    # The client learns the class of failure and the trace id; the upstream's own words and
    # the upstream's name (config) are only in the trace.
    client, store, upstream = gateway
    upstream.set_fault(fault)
    r = await client.post(CHAT, json=msg("hi"))
    assert r.status_code == status, r.text
    error = r.json()["error"]
    trace_id = r.headers["x-crossroads-trace-id"]
    assert error["code"] == code and client_says in error["message"]
    assert trace_id in error["message"]
    assert "'fake'" not in error["message"] and trace_says not in error["message"]
    if fault.startswith("429"):
        assert r.headers["retry-after"] == "7"
    trace = store.get(trace_id)
    assert trace["status"] == status and trace_says in trace["error"] and "'fake'" in trace["error"]


async def test_upstream_unreachable(fake_upstream: FakeUpstream) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    app = create_app(routing_config(f"http://127.0.0.1:{port}/v1"), store=MemoryTraceStore())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        r = await client.post(CHAT, json=msg("hi"))
    await app.shutdown()
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unreachable"


async def test_upstream_timeout_is_504_not_a_hang(fake_upstream: FakeUpstream) -> None:
    cfg = routing_config(
        fake_upstream.base_url,
        upstreams=[
            {"name": "fake", "base_url": fake_upstream.base_url, "timeouts": {"total": 0.5}}
        ],
    )
    app = create_app(cfg, store=MemoryTraceStore())
    fake_upstream.set_fault("hang")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=10
    ) as client:
        r = await client.post(CHAT, json=msg("hi"))
    await app.shutdown()
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"


async def test_stream_failure_before_first_byte_is_a_plain_error(gateway) -> None:
    client, _, upstream = gateway
    upstream.set_fault("502")
    r = await client.post(CHAT, json=msg("hi", stream=True))
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_status"


async def test_stream_cut_midway_ends_with_error_event_and_done(gateway) -> None:
    client, store, upstream = gateway
    upstream.set_fault("cut_stream:2")
    r = await client.post(CHAT, json=msg("hi", stream=True))
    assert r.status_code == 200
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["code"] == "upstream_protocol" and "could not read" in error["message"]
    assert "closed the connection" not in error["message"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text and "echo: hi".startswith(text)  # what arrived is a prefix, never garbage
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["status"] == 502 and "closed the connection" in trace["error"]


async def test_client_disconnect_cancels_the_upstream_call(fake_upstream: FakeUpstream) -> None:
    """A raw ASGI call whose client leaves while the upstream hangs: the gateway cancels the
    upstream request (the fake sees it leave) and records a 499 trace."""
    store = MemoryTraceStore()
    app = create_app(routing_config(fake_upstream.base_url), store=store)
    await app.startup()
    fake_upstream.set_fault("hang")
    body = orjson.dumps(msg("hi"))
    gone = asyncio.Event()
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    task = asyncio.create_task(app(scope, receive, send))
    for _ in range(200):
        if fake_upstream.stats()["in_flight"] >= 1:
            break
        await asyncio.sleep(0.01)
    assert fake_upstream.stats()["in_flight"] == 1
    gone.set()
    await asyncio.wait_for(task, 5)
    for _ in range(200):
        if fake_upstream.stats()["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert fake_upstream.stats()["in_flight"] == 0
    assert sent == []  # nobody to answer
    (trace,) = store.recent()
    assert trace["status"] == 499
    await app.shutdown()


async def test_api_keys_are_enforced_and_named_in_traces(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_A_KEY", "secret-a")
    store = MemoryTraceStore()
    cfg = routing_config(
        fake_upstream.base_url, server={"api_keys": [{"name": "team-a", "key_env": "TEAM_A_KEY"}]}
    )
    app = create_app(cfg, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        r = await client.post(CHAT, json=msg("hi"))
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = await client.post(CHAT, json=msg("hi"), headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await client.post(CHAT, json=msg("hi"), headers={"authorization": "Bearer secret-a"})
        assert r.status_code == 200
        assert (await client.get("/v1/models")).status_code == 401
    await app.shutdown()
    assert store.get(r.headers["x-crossroads-trace-id"])["caller"]["key_name"] == "team-a"


async def test_stream_without_usage_is_counted_by_the_gateway(fake_upstream: FakeUpstream) -> None:
    """Some servers ignore stream_options.include_usage: the gateway counts the relayed text."""

    class NoUsage:
        name = "fake"

        async def stream(self, endpoint, body):  # type: ignore[no-untyped-def]
            for event in (
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                {"choices": [{"index": 0, "delta": {"content": "hello "}}]},
                {"choices": [{"index": 0, "delta": {"content": "world"}, "finish_reason": "stop"}]},
            ):
                yield b"data: " + orjson.dumps(event) + b"\n\n"
            yield b"data: [DONE]\n\n"

        async def aclose(self) -> None:
            pass

    store = MemoryTraceStore()
    app = create_app(
        routing_config(fake_upstream.base_url), store=store, upstreams={"fake": NoUsage()}
    )  # type: ignore[dict-item]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        r = await client.post(CHAT, json=msg("hi", stream=True))
    await app.shutdown()
    assert "hello " in r.text and r.text.endswith("data: [DONE]\n\n")
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["usage"]["estimated"] is True
    assert trace["usage"]["completion_tokens"] == 2 and trace["usage"]["prompt_tokens"] > 0
    assert trace["cost"] > 0


async def test_header_signal_routes_and_credentials_never_reach_traces(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_KEY", "sk-secret-123")
    store = MemoryTraceStore()
    cfg = routing_config(
        fake_upstream.base_url,
        server={"api_keys": [{"name": "team", "key_env": "TEAM_KEY"}]},
        signals=[
            {
                "kind": "metadata",
                "name": "gold",
                "source": "header",
                "header": "X-Tier",
                "values": ["gold"],
            }
        ],
        decisions=[{"name": "gold-tier", "when": "metadata:gold", "models": ["big"]}],
    )
    app = create_app(cfg, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        headers = {
            "authorization": "Bearer sk-secret-123",
            "x-tier": "gold",
            "cookie": "session=abc",
        }
        r = await client.post(CHAT, json=msg("hi"), headers=headers)
    await app.shutdown()
    assert r.status_code == 200 and r.headers["x-crossroads-decision"] == "gold-tier"
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["caller"] == {
        "key_name": "team",
        "user": None,
        "headers": {"x-tier": "gold"},
        "team": None,
    }
    assert "sk-secret-123" not in orjson.dumps(trace).decode()


async def test_pii_matched_by_a_signal_never_reaches_the_trace(
    fake_upstream: FakeUpstream,
) -> None:
    store = MemoryTraceStore()
    cfg = routing_config(
        fake_upstream.base_url,
        signals=[
            {"kind": "regex", "name": "pii", "patterns": [r"[\w.+-]+@[\w-]+\.\w+"]},
            {"kind": "keyword", "name": "secret", "keywords": ["hunter2"]},
        ],
        decisions=[
            {"name": "private", "when": {"all": ["regex:pii", "keyword:secret"]}, "models": ["big"]}
        ],
    )
    app = create_app(cfg, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        r = await client.post(CHAT, json=msg("mail alice@example.com, password HUNTER2"))
    await app.shutdown()
    assert r.status_code == 200 and r.headers["x-crossroads-decision"] == "private"
    assert "alice" not in str(r.headers).lower() and "hunter2" not in str(r.headers).lower()
    trace = store.get(r.headers["x-crossroads-trace-id"])
    signals = trace["route"]["signals"]
    assert signals["regex:pii"]["matched"] and signals["regex:pii"]["detail"] == "patterns[0]"
    assert signals["keyword:secret"]["value"] == 1
    dumped = orjson.dumps(trace).decode().lower()
    assert "alice" not in dumped and "hunter2" not in dumped


async def test_caller_fields_are_bounded_in_traces(
    fake_upstream: FakeUpstream,
) -> None:
    store = MemoryTraceStore()
    cfg = routing_config(
        fake_upstream.base_url,
        signals=[
            {"kind": "metadata", "name": "t", "source": "header", "header": "X-Tier",
             "pattern": "^g"},
            {"kind": "metadata", "name": "u", "source": "user", "pattern": "^u"},
        ],
        decisions=[{"name": "tier", "when": {"any": ["metadata:t", "metadata:u"]},
                    "models": ["big"]}],
    )  # fmt: skip
    app = create_app(cfg, store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        r = await client.post(
            CHAT, json=msg("hi", user="u" * 50_000), headers={"x-tier": "g" * 20_000}
        )
    await app.shutdown()
    assert r.status_code == 200 and r.headers["x-crossroads-decision"] == "tier"
    trace = store.get(r.headers["x-crossroads-trace-id"])
    user, tier = trace["caller"]["user"], trace["caller"]["headers"]["x-tier"]
    assert user.startswith("u" * 256) and len(user) < 300 and "49744 more chars" in user
    assert tier.startswith("g" * 256) and len(tier) < 300 and "more chars" in tier
    assert len(orjson.dumps(trace)) < 5_000


async def test_client_gone_mid_stream_closes_the_upstream_and_is_traced(
    fake_upstream: FakeUpstream,
) -> None:
    store = MemoryTraceStore()
    app = create_app(routing_config(fake_upstream.base_url), store=store)
    await app.startup()
    fake_upstream.set_fault("slow_drip:0.2")
    sent: list[dict] = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body" and len(sent) >= 3:
            raise OSError("client went away")  # what an ASGI server raises on a closed socket
        sent.append(message)

    body = [{"type": "http.request", "body": orjson.dumps(msg("hi", stream=True))}]

    async def receive() -> dict:
        if body:
            return body.pop()
        await asyncio.sleep(60)  # this client never says goodbye: only its socket fails
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": CHAT, "headers": [], "query_string": b""}
    await asyncio.wait_for(app(scope, receive, send), 10)
    for _ in range(200):
        if fake_upstream.stats()["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert fake_upstream.stats()["in_flight"] == 0  # the upstream call was closed
    (trace,) = store.recent()
    assert trace["status"] == 499 and "mid-stream" in trace["error"]
    assert app.dispatcher.snapshot()[0]["in_flight"] == 0
    await app.shutdown()


async def test_freeze_gc_keeps_start_up_objects_out_of_collections(
    fake_upstream: FakeUpstream,
) -> None:
    import gc

    from crossroads.gateway.app import GC_FIRST_THRESHOLD

    thresholds = gc.get_threshold()
    app = create_app(routing_config(fake_upstream.base_url), freeze_gc=True)
    try:
        await app.startup()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold()[0] == GC_FIRST_THRESHOLD > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        await app.shutdown()


def test_trace_ids_sort_by_time_and_differ() -> None:
    from crossroads.gateway.app import new_trace_id

    ids = [new_trace_id(t) for t in (1_795_000_000.0, 1_795_000_000.001, 1_795_000_001.5)]
    assert ids == sorted(ids) and all(len(i) == 24 for i in ids)
    assert len({new_trace_id(1.0) for _ in range(10_000)}) == 10_000  # across id batches


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_gone_before_the_answer_is_a_499_not_a_logged_500(
    fake_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    """The server cannot write the answer because the client left: the trace says 499,
    nothing is logged as an error, and the gateway does not try to write an error."""
    from crossroads.exceptions import ClientGoneError

    store = MemoryTraceStore()
    app = create_app(routing_config(fake_upstream.base_url), store=store)
    await app.startup()
    body = orjson.dumps(
        {"model": "auto", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        raise ClientGoneError("the client disconnected")

    scope = {"type": "http", "method": "POST", "path": CHAT, "headers": [], "query_string": b""}
    with caplog.at_level("WARNING"):
        await app(scope, receive, send)
    await app.shutdown()
    assert len(sent) == 1, "the gateway kept writing to a client that was gone"
    (trace,) = store.recent(1)
    assert trace["status"] == 499
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


class _Malformed:
    """An upstream whose answers are JSON objects of the wrong shape."""

    name = "fake"

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    async def complete(self, endpoint, body):  # type: ignore[no-untyped-def]
        from crossroads.dispatch.base import Completion

        return Completion(self.answer, None)

    async def stream(self, endpoint, body):  # type: ignore[no-untyped-def]
        yield b"data: " + self.answer + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    "answer",
    [
        b'{"choices": [1]}',
        b'{"choices": "abc"}',
        b'{"choices": [{"message": {"tool_calls": [1]}, "delta": {"tool_calls": [1]}}]}',
        b'{"choices": [{"message": "hi", "delta": "hi"}]}',
    ],
)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/responses", {"input": "hi"}),
        (CHAT, msg("hi", stream=True)),
        (
            "/v1/messages",
            {"max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        ),
    ],
)
async def test_an_answer_of_the_wrong_shape_is_the_upstreams_502_not_an_internal_error(
    fake_upstream: FakeUpstream, path: str, body: dict[str, Any], answer: bytes
) -> None:
    # Found by fuzz/upstream_response.py: the decoders read such JSON with .get() and raised.
    app = create_app(
        routing_config(fake_upstream.base_url, dispatch={"fallback_across_models": False}),
        store=MemoryTraceStore(),
        upstreams={"fake": _Malformed(answer)},  # type: ignore[dict-item]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        r = await client.post(path, json={"model": "small", **body})
    await app.shutdown()
    if r.headers["content-type"].startswith("text/event-stream"):  # failed after the start
        assert b"upstream" in r.content and b"internal error" not in r.content
    else:
        assert r.status_code == 502, r.text
        assert "could not read (protocol)" in r.text and "internal error" not in r.text
