"""A request that cannot be sent is the client's 400, once: it never counts against an
endpoint, is not retried down the chain, and leaves every circuit closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.fixture
async def client(fake_upstream: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(routing_config(fake_upstream.base_url), store=MemoryTraceStore())
    await app.startup()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c
    await app.shutdown()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": True}),
        ("/v1/completions", {"prompt": "hi"}),
    ],
)
async def test_unencodable_body_is_a_400_and_opens_no_circuit(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, path: str, body: dict[str, Any]
) -> None:
    for _ in range(6):  # more than breaker.consecutive_failures
        r = await client.post(path, json={"model": "auto", **body, "x_extra": _deep(300)})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_request_body"
        assert r.headers.get("x-crossroads-attempts") is None  # tried once, not down the chain
    endpoints = (await client.get("/v1/crossroads/endpoints")).json()["data"]
    assert endpoints and all(e["state"] == "closed" for e in endpoints), endpoints
    counts = fake_upstream.stats()["counts"]
    assert not counts.get("POST /v1/chat/completions") and not counts.get("POST /v1/completions")
    ok = await client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200


def _tool(schema: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": schema}}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (  # a tool schema too deep to encode, through every inbound format
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "tools": [_tool(_deep(300))]},
        ),
        (
            "/v1/messages",
            {
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": "f", "input_schema": _deep(300)}],
            },
        ),
        (
            "/v1/messages",
            {
                "max_tokens": 5,
                "stream": True,
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "t", "name": "f", "input": _deep(300)}
                        ],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}],
                    },
                ],
            },
        ),
        (
            "/v1/responses",
            {
                "input": "hi",
                "tools": [{"type": "function", "name": "f", "parameters": _deep(300)}],
            },
        ),
        (
            "/v1/responses",
            {
                "input": [
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c", "output": _deep(300)},
                ]
            },
        ),
        ("/v1/embeddings", {"input": "hi", "x_extra": _deep(300)}),
    ],
)
async def test_poison_through_every_inbound_format_is_a_4xx_and_opens_no_circuit(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream, path: str, body: dict[str, Any]
) -> None:
    for _ in range(6):  # more than breaker.consecutive_failures
        r = await client.post(path, json={"model": "auto", **body})
        assert 400 <= r.status_code < 500, r.text
    endpoints = (await client.get("/v1/crossroads/endpoints")).json()["data"]
    assert endpoints and all(e["state"] == "closed" for e in endpoints), endpoints
    ok = await client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert ok.status_code == 200
