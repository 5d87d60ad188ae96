"""What every HTTP upstream shares, on both HTTP clients (raw and aiohttp) and both APIs
(OpenAI, Anthropic): redirects are not followed, bodies are bounded, compression is refused,
and a status that is not a success never passes for one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crossroads.config import AnthropicUpstreamConfig, OpenAIUpstreamConfig, parse_config
from crossroads.dispatch.anthropic import AnthropicUpstream
from crossroads.dispatch.errors import status_error
from crossroads.dispatch.http import HTTPUpstream
from crossroads.dispatch.openai import OpenAIUpstream
from crossroads.dispatch.retries import is_retryable
from crossroads.exceptions import UpstreamError, UpstreamProtocolError, UpstreamStatusError
from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore
from tests.support.fake_upstream import FakeUpstream
from tests.support.raw_upstream import (
    Script,
    completions,
    endless_event,
    gzip_bomb,
    header_flood,
    huge_body,
    huge_header,
    redirect_to,
)

BODY: dict[str, Any] = {"model": "s", "messages": [{"role": "user", "content": "hi"}]}
TIMEOUTS = {"connect": 2, "first_byte": 30, "read": 30, "total": 30}
KINDS = ["raw", "aiohttp", "anthropic"]


def upstream_for(kind: str, base_url: str, **config: Any) -> HTTPUpstream:
    common = {"name": "up", "base_url": base_url, "timeouts": TIMEOUTS, **config}
    if kind == "anthropic":
        return AnthropicUpstream(AnthropicUpstreamConfig(kind="anthropic", **common))
    return OpenAIUpstream(OpenAIUpstreamConfig(http_client=kind, **common))


async def call(upstream: HTTPUpstream, stream: bool) -> None:
    """One call, bounded so a regression fails rather than hangs."""

    async def run() -> None:
        if stream:
            async for _ in upstream.stream("chat", {**BODY, "stream": True}):
                pass
        else:
            await upstream.complete("chat", BODY)

    try:
        await asyncio.wait_for(run(), 5)
    finally:
        await upstream.aclose()


@pytest.fixture
async def elsewhere() -> AsyncIterator[Script]:
    """Where the redirects point: a server that would answer."""
    async with Script(completions) as script:
        yield script


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_redirect_is_an_error_and_is_not_followed(
    monkeypatch: pytest.MonkeyPatch, elsewhere: Script, kind: str, stream: bool
) -> None:
    monkeypatch.setenv("UP_KEY", "secret-key")
    config: dict[str, Any] = {"api_key_env": "UP_KEY"}
    if kind == "aiohttp":
        config["api_key_header"] = "api-key"  # aiohttp drops only authorization across origins
    target = elsewhere.base_url + "/v1/chat/completions"
    async with Script(redirect_to(target)) as script:
        upstream = upstream_for(kind, script.base_url + "/v1", **config)
        with pytest.raises(UpstreamStatusError, match="redirect") as caught:
            await call(upstream, stream)
        assert script.requests == 1 and b"secret-key" in script.seen[0]
    assert elsewhere.requests == 0  # the key never left for the other server
    assert is_retryable(caught.value) and caught.value.status == 502


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_compressed_answer_is_refused_without_inflating_it(kind: str, stream: bool) -> None:
    async with Script(gzip_bomb(128 << 20)) as script:  # 128 MiB of zeros in ~128 KiB
        upstream = upstream_for(kind, script.base_url + "/v1")
        with pytest.raises(UpstreamProtocolError, match="content-encoding 'gzip'") as caught:
            await call(upstream, stream)
        assert is_retryable(caught.value)
        head = script.seen[0].lower()
        assert b"accept-encoding: identity\r\n" in head and b"gzip" not in head


@pytest.mark.parametrize("handler", [header_flood(10_000), huge_header(1 << 20)])
@pytest.mark.parametrize("kind", KINDS)
async def test_an_oversized_head_is_the_endpoints_protocol_error(kind: str, handler: Any) -> None:
    async with Script(handler) as script:
        upstream = upstream_for(kind, script.base_url + "/v1")
        with pytest.raises(UpstreamProtocolError) as caught:
            await call(upstream, False)
        assert is_retryable(caught.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_declared_body_over_max_response_bytes_fails_on_the_head(kind: str) -> None:
    async with Script(huge_body(1 << 30)) as script:  # content-length: 1 GiB, then silence
        upstream = upstream_for(kind, script.base_url + "/v1")
        with pytest.raises(UpstreamProtocolError, match=r"max_response_bytes \(33554432 bytes\)"):
            await call(upstream, False)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_chunked_body_over_max_response_bytes_fails(kind: str) -> None:
    async with Script(huge_body(8 << 20, chunked=True)) as script:
        upstream = upstream_for(kind, script.base_url + "/v1", max_response_bytes=1 << 20)
        with pytest.raises(UpstreamProtocolError, match=r"max_response_bytes \(1048576 bytes\)"):
            await call(upstream, False)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_event_that_never_ends_fails_at_max_event_bytes(kind: str) -> None:
    async with Script(endless_event) as script:
        upstream = upstream_for(kind, script.base_url + "/v1", max_event_bytes=64 * 1024)
        with pytest.raises(UpstreamProtocolError, match=r"max_event_bytes \(65536 bytes\)"):
            await call(upstream, True)


@pytest.mark.parametrize("status", [0, 100, 304, 307])
def test_a_status_that_is_no_answer_counts_against_the_endpoint(status: int) -> None:
    err = status_error("up", status, b"", {"location": "http://elsewhere/"})
    assert isinstance(err, UpstreamError) and err.status == 502
    assert is_retryable(err) and err.retryable


def test_the_clients_own_errors_still_do_not_count() -> None:
    assert not is_retryable(status_error("up", 400, b"", {}))
    assert not is_retryable(status_error("up", 422, b"", {}))


@pytest.mark.parametrize(
    "handler",
    [header_flood(10_000), gzip_bomb(8 << 20), huge_body(1 << 30), redirect_to("http://x/")],
    ids=["head", "gzip", "body", "redirect"],
)
async def test_a_poisoning_endpoint_opens_its_circuit_and_requests_go_elsewhere(
    fake_upstream: FakeUpstream, handler: Any
) -> None:
    async with Script(handler) as bad:
        config = parse_config(
            {
                "upstreams": [
                    {"name": "bad", "base_url": bad.base_url + "/v1", "timeouts": TIMEOUTS},
                    {"name": "good", "base_url": fake_upstream.base_url, "timeouts": TIMEOUTS},
                ],
                "models": [
                    {
                        "name": "m",
                        "upstream_model": "s",
                        "endpoints": [
                            {"upstream": "bad", "weight": 1000},  # tried first
                            {"upstream": "good", "weight": 1},
                        ],
                        "balancing": "weighted",
                    }
                ],
                "default": {"models": ["m"]},
                "dispatch": {"breaker": {"consecutive_failures": 2, "open_s": 60}},
                "store": {"traces": "memory"},
            }
        )
        app = create_app(config, store=MemoryTraceStore())
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                for _ in range(12):
                    r = await client.post("/v1/chat/completions", json={**BODY, "model": "m"})
                    assert r.status_code == 200, r.text
                    assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
                states = (await client.get("/v1/crossroads/endpoints")).json()["data"]
        finally:
            await app.shutdown()
    by_key = {e["endpoint"]: e["state"] for e in states}
    assert by_key == {"bad/s": "open", "good/s": "closed"}
    assert bad.requests == 2  # consecutive_failures, then never again while open
