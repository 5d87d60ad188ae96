"""CPU per request of the gateway's own request path, in process, no sockets: the ASGI app
with an in-memory upstream, so what is measured is parsing, routing, format conversion,
dispatch bookkeeping, settlement and trace assembly.

    python -m bench.request_path [--requests 20000] [--stream] [--metrics on|off|both]
    python -m bench.request_path --limits redis://127.0.0.1:6379/0   # limits on and off

Prints CPU µs per request (process time, best of 5 rounds). Compare two checkouts by running
it in each, alternating, in one session; the numbers are comparable only on one machine.
With ``--limits SPEC`` the caller's key has the rate limits and budgets of
``bench/configs/crossroads-limits.yaml`` counted in that state backend, against the same key
without a policy: what admission and settlement cost the gateway's process (the backend's
own work, and the wait for it, are not in process time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import os
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


KEY = "bench-key"
POLICY = {"rpm": 100_000_000, "tpm": 100_000_000_000, "budgets": [{"usd": 1e6, "period": "day"}]}
TEAM = {"rpm": 100_000_000, "budgets": [{"usd": 1e7, "period": "month"}]}


def limited(state: str | None) -> dict[str, Any]:
    """Config for a caller key: with ``state``, the key and its team have the limits of
    ``crossroads-limits.yaml`` counted there; without, the same key has no policy."""
    if state is None:
        return {"server": {"api_keys": [{"name": "bench", "key_env": "CROSSROADS_BENCH_KEY"}]}}
    key = {"name": "bench", "key_env": "CROSSROADS_BENCH_KEY", "team": "t", "policy": POLICY}
    prefix = f"crossroads-bench-{os.getpid()}:"
    return {
        "server": {"api_keys": [key]},
        "teams": [{"name": "t", "policy": TEAM}],
        "state": {"backend": state, "key_prefix": prefix},
    }


async def app_and_request(
    stream: bool,
    metrics: bool = True,
    policy: str = "small",
    limits: dict[str, Any] | None = None,
) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """The started app and a call that sends it one chat request (JSON or a stream);
    ``policy``: ``small`` (``CONFIG``) or ``heuristic`` (:func:`heuristic_config`);
    ``limits``: more config (:func:`limited`), the request then carries the bench key."""
    base = heuristic_config() if policy == "heuristic" else CONFIG
    config = parse_config({**base, "metrics": {"enabled": metrics}, **(limits or {})})
    if limits is not None:
        os.environ["CROSSROADS_BENCH_KEY"] = KEY
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
    if limits is not None:
        scope["headers"].append((b"authorization", f"Bearer {KEY}".encode()))

    async def send(message: dict[str, Any]) -> None:
        pass

    async def call() -> None:
        read = False

        async def receive() -> dict[str, Any]:
            nonlocal read
            if read:  # the client stays: a disconnect watcher waits (it must not spin)
                await asyncio.get_running_loop().create_future()
            read = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, receive, send)

    return app, call


async def best_cpu_us(calls: dict[str, Any], n: int, rounds: int) -> dict[str, float]:
    """Best CPU µs per request of each ``name -> (app, call)`` over ``rounds`` of ``n`` calls,
    the names taking turns in each round (a fresh in-memory trace store each time)."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, (app, call) in calls.items():
            app.store = MemoryTraceStore()
            gc.collect()
            t0 = time.process_time()
            for _ in range(n):
                await call()
            best[name] = min(best[name], (time.process_time() - t0) / n * 1e6)
    return best


async def run(
    n: int, stream: bool, variants: dict[str, dict[str, Any]], rounds: int = 5
) -> dict[str, float]:
    """Best CPU µs per request of each variant (name -> arguments of
    :func:`app_and_request`), their rounds interleaved in one process so that load on the
    machine weighs on all alike; with two variants also ``paired difference``: the median
    difference of batches of 200 requests, the variants taking turns."""
    calls = {}
    for name, kwargs in variants.items():
        calls[name] = await app_and_request(stream, **kwargs)
    best = await best_cpu_us(calls, n, rounds)
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
        await _forget_state(app)
        await app.shutdown()
    return best


async def _forget_state(app: Any) -> None:
    """Delete what this run counted in a Redis state backend (its own key prefix)."""
    limits = app.limits
    if limits.settings.backend.partition(":")[0] not in ("redis", "rediss", "unix"):
        return
    import redis.asyncio as aioredis  # the dev extra's client, apart from the gateway's

    await limits.settler.drain(5.0)
    client = aioredis.Redis.from_url(limits.settings.backend)
    keys = [key async for key in client.scan_iter(f"{limits.prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


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
    parser.add_argument(
        "--limits",
        metavar="STATE",
        help="a state backend (memory, redis://...): limits on and off, like --metrics both",
    )
    args = parser.parse_args()
    variants: dict[str, dict[str, Any]] = {"on": {"metrics": True}, "off": {"metrics": False}}
    label = "metrics"
    if args.limits:
        metrics = args.metrics != "off"
        variants = {
            "on": {"metrics": metrics, "limits": limited(args.limits)},
            "off": {"metrics": metrics, "limits": limited(None)},
        }
        label = "limits"
    elif args.metrics != "both":
        variants = {args.metrics: variants[args.metrics]}
    # With a state backend on a socket, the event loop is the one `crossroads serve` uses.
    uvloop = args.limits and importlib.util.find_spec("uvloop") is not None
    runner = __import__("uvloop").run if uvloop else asyncio.run
    best = runner(run(args.requests, args.stream, variants, args.rounds))
    kind = "stream" if args.stream else "json"
    paired = best.pop("paired difference", None)
    for name, us in best.items():
        print(f"{kind}, {label} {name}: {us:.1f} us CPU per request (best round)")
    if paired is not None:
        print(
            f"{kind}, on - off: {best['on'] - best['off']:+.1f} us (best rounds), "
            f"{paired:+.1f} us (median of paired batches)"
        )


if __name__ == "__main__":
    main()
