"""CPU per request of the gateway's own request path, in process, no sockets: the ASGI app
with an in-memory upstream, so what is measured is parsing, routing, format conversion,
dispatch bookkeeping, settlement and trace assembly.

    python -m bench.request_path [--requests 20000] [--stream] [--metrics on|off|both]

Prints CPU µs per request (process time, best of 5 rounds). Compare two checkouts by running
it in each, alternating, in one session; the numbers are comparable only on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
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


def heuristic_config() -> dict[str, Any]:
    """``CONFIG`` with the models, signals and decisions of
    ``bench/configs/crossroads-heuristic.yaml`` (what ``--wire`` serves), on the in-memory
    upstream: the same routing work as over the wire, without the sockets."""
    import yaml

    path = Path(__file__).parent / "configs" / "crossroads-heuristic.yaml"
    cfg = yaml.safe_load(path.read_text())
    models = [{"name": m["name"], "upstream": "mem", "price": m["price"]} for m in cfg["models"]]
    return {**CONFIG, "models": models, **{k: cfg[k] for k in ("signals", "decisions", "default")}}


async def app_and_request(
    stream: bool, metrics: bool = True, policy: str = "small"
) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """The started app and a call that sends it one chat request (JSON or a stream);
    ``policy``: ``small`` (``CONFIG``) or ``heuristic`` (:func:`heuristic_config`)."""
    base = heuristic_config() if policy == "heuristic" else CONFIG
    config = parse_config({**base, "metrics": {"enabled": metrics}})
    app = create_app(config, store=MemoryTraceStore(), upstreams={"mem": InMemory()})
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


async def run(n: int, stream: bool, variants: dict[str, bool], rounds: int = 5) -> dict[str, float]:
    """Best CPU µs per request of each variant (name -> metrics on), their rounds
    interleaved in one process so that load on the machine weighs on all alike; with two
    variants also ``paired difference``: the median difference of batches of 200 requests,
    the variants taking turns."""
    calls = {}
    for name, metrics in variants.items():
        calls[name] = await app_and_request(stream, metrics)
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, (app, call) in calls.items():
            app.store = MemoryTraceStore()
            gc.collect()
            t0 = time.process_time()
            for _ in range(n):
                await call()
            best[name] = min(best[name], (time.process_time() - t0) / n * 1e6)
    if len(calls) == 2:
        diffs = []
        for _ in range(max(1, rounds * n // 200)):
            took = []
            for _, call in calls.values():
                t0 = time.process_time()
                for _ in range(200):
                    await call()
                took.append((time.process_time() - t0) / 200 * 1e6)
            diffs.append(took[0] - took[1])
        best["paired difference"] = statistics.median(diffs)
    for app, _ in calls.values():
        await app.shutdown()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.request_path")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--metrics",
        choices=["on", "off", "both"],
        default="on",
        help="both: metrics on and off, rounds interleaved, and the difference",
    )
    args = parser.parse_args()
    variants = {"on": True, "off": False}
    if args.metrics != "both":
        variants = {args.metrics: variants[args.metrics]}
    best = asyncio.run(run(args.requests, args.stream, variants, args.rounds))
    kind = "stream" if args.stream else "json"
    paired = best.pop("paired difference", None)
    for name, us in best.items():
        print(f"{kind}, metrics {name}: {us:.1f} us CPU per request (best round)")
    if paired is not None:
        print(
            f"{kind}, on - off: {best['on'] - best['off']:+.1f} us (best rounds), "
            f"{paired:+.1f} us (median of paired batches)"
        )


if __name__ == "__main__":
    main()
