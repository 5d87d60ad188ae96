"""Streams passing through the engine: a client that speaks the upstream's format reads the
upstream's bytes, less the usage it did not ask for, however the upstream's reads fell."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from crossroads.dispatch.sse import frames
from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config


def chunk(**delta: Any) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}\n\n'
DONE = b"data: [DONE]\n\n"
EVENTS = [
    chunk(role="assistant", content=""),
    b": keep-alive\n\n",
    chunk(content="one"),
    chunk(content=' "usage" '),  # a mark inside text is escaped: not a usage event
    b"event: note\nid: 7\n\n",
    chunk(content="three"),
    chunk(),
    USAGE,
    DONE,
]
STREAM = b"".join(EVENTS)


class Scripted:
    """An upstream sending ``data`` in reads of ``size`` bytes (framed as the real ones are)."""

    name = "fake"

    def __init__(self, size: int, data: bytes = STREAM) -> None:
        self.size = size
        self.data = data

    async def stream(self, endpoint: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        data = self.data

        async def reads() -> AsyncIterator[bytes]:
            for i in range(0, len(data), self.size):
                yield data[i : i + self.size]

        async for batch in frames(reads()):
            yield batch

    async def aclose(self) -> None:
        pass


async def relay(upstream: Scripted, **body: Any) -> tuple[list[dict[str, Any]], Any]:
    """The ASGI messages of one streamed chat answer, and its trace."""
    store = MemoryTraceStore()
    app = create_app(
        routing_config("http://127.0.0.1:9/v1"), store=store, upstreams={"fake": upstream}
    )  # type: ignore[dict-item]
    await app.startup()
    raw = orjson.dumps(
        {"model": "small", "stream": True, "messages": [{"role": "user", "content": "hi"}], **body}
    )
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    sent: list[dict[str, Any]] = []
    read = False

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read:
            await asyncio.get_running_loop().create_future()
        read = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    await app.shutdown()
    (trace,) = store._traces
    return [m for m in sent if m["type"] == "http.response.body"], trace


@pytest.mark.parametrize("size", [1, 7, 50, 200, len(STREAM)])
@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_passed_stream_is_the_upstreams_bytes(size: int, include_usage: bool) -> None:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    bodies, trace = await relay(Scripted(size), **options)
    expected = STREAM if include_usage else STREAM.replace(USAGE, b"")
    assert b"".join(m["body"] for m in bodies) == expected
    assert [m["more_body"] for m in bodies] == [True] * (len(bodies) - 1) + [False]
    assert bodies[-1]["body"].endswith(DONE), "the end leaves with the last events"
    assert (trace.usage.prompt_tokens, trace.usage.completion_tokens) == (9, 3)


async def test_what_follows_the_end_is_not_forwarded() -> None:
    late = chunk(content="late") + b"data: {bad\n\n"
    bodies, _ = await relay(Scripted(len(STREAM) + len(late), STREAM + late))
    assert b"".join(m["body"] for m in bodies) == STREAM.replace(USAGE, b"")


async def test_a_stream_without_usage_counts_what_was_forwarded() -> None:
    stream = STREAM.replace(USAGE, b"")
    bodies, trace = await relay(Scripted(200, stream))
    assert b"".join(m["body"] for m in bodies) == stream
    assert trace.usage.estimated and trace.usage.completion_tokens > 0
