"""CPU per request of the gateway's own request path, in process, no sockets: the ASGI app
with an in-memory upstream, so what is measured is parsing, routing, format conversion,
dispatch bookkeeping, settlement and trace assembly.

    python -m bench.request_path [--requests 20000] [--stream]

Prints CPU µs per request (process time, best of 5 rounds). Compare two checkouts by running
it in each, alternating, in one session; the numbers are comparable only on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from crossroads.config import parse_config
from crossroads.dispatch.base import Completion
from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore
from crossroads.types import Usage

ANSWER = orjson.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "s",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello there"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
)
EVENTS = [
    b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n'
] * 8 + [
    b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":8}}\n\n'
    b"data: [DONE]\n\n"
]


class InMemory:
    """An upstream answering at once (the protocol of crossroads.dispatch.base.Upstream)."""

    name = "mem"
    deadlines = True  # like the OpenAI upstream's own client, it holds the dispatch deadline

    async def complete(
        self, endpoint: str, body: dict[str, Any], within: float | None = None
    ) -> Completion:
        return Completion(ANSWER, Usage(12, 3))

    async def stream(self, endpoint: str, body: dict[str, Any]):  # type: ignore[no-untyped-def]
        for event in EVENTS:
            yield event

    async def aclose(self) -> None:
        pass


CONFIG = {
    "upstreams": [{"name": "mem", "base_url": "http://127.0.0.1:9/v1"}],
    "models": [
        {"name": "small", "upstream": "mem", "price": {"input": 0.1, "output": 0.2}},
        {"name": "big", "upstream": "mem", "price": {"input": 1, "output": 2}},
    ],
    "signals": [
        {"kind": "keyword", "name": "code", "keywords": ["python", "function", "bug"]},
        {"kind": "tokens", "name": "long", "min": 2000},
    ],
    "decisions": [
        {"name": "coding", "when": {"any": ["keyword:code", "tokens:long"]}, "models": ["big"]},
    ],
    "default": {"models": ["small", "big"], "selection": "cheapest"},
}


async def app_and_request(stream: bool) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """The started app and a call that sends it one chat request (JSON or a stream)."""
    app = create_app(parse_config(CONFIG), store=MemoryTraceStore(), upstreams={"mem": InMemory()})
    await app.startup()
    body = orjson.dumps(
        {
            "model": "auto",
            "stream": stream,
            "max_tokens": 50,
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "Name three colours, please, and say why."},
            ],
        }
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def call() -> None:
        await app(scope, receive, send)

    return app, call


async def run(n: int, stream: bool) -> float:
    app, call = await app_and_request(stream)
    best = float("inf")
    for _ in range(5):
        app.store = MemoryTraceStore()
        gc.collect()
        t0 = time.process_time()
        for _ in range(n):
            await call()
        best = min(best, (time.process_time() - t0) / n * 1e6)
    await app.shutdown()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.request_path")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    us = asyncio.run(run(args.requests, args.stream))
    print(f"{'stream' if args.stream else 'json'}: {us:.1f} us CPU per request")


if __name__ == "__main__":
    main()
