"""What plans cost beyond the calls they make, and what a semantic-cache lookup costs.

    python -m bench.plans engine [--requests 5000] [--rounds 5]
    python -m bench.plans cache [--entries 1000,10000] [--lookups 2000] [--redis redis://127.0.0.1:6379/0]

``engine``: CPU µs per request in process (the ASGI app, an upstream that answers at once,
see :mod:`bench.request_path`) of one call without a plan, of a cascade whose first stage
accepts (one call) and of one that escalates (two calls), JSON and streams, rounds
interleaved; and the CPU of one (JSON) dispatcher call alone, so that an escalated
cascade's overhead is ``escalated - single - one call``.

``cache``: wall µs per lookup once the prompt is embedded (the embedding is shared with the
routing signals): an exact hit, and an exact miss followed by the similarity search (a
similar hit, confirmed in Redis for the Redis store, or a miss), against stores holding N
entries in one scope (384-d unit vectors, as MiniLM gives), for the in-process store and,
with ``--redis``, the Redis store (a unique key prefix, deleted after).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import orjson

from bench.request_path import CONFIG, InMemory, best_cpu_us
from crossroads.config import parse_config
from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore

PLANS: dict[str, dict[str, Any] | None] = {
    "single call": None,
    "cascade, accepted (1 call)": {
        "kind": "cascade",
        "stages": [{"models": ["small"], "accept": [{"rule": "checks"}]}, {"models": ["big"]}],
    },
    # The in-memory upstream returns no logprobs, so a confidence rule always escalates.
    "cascade, escalated (2 calls)": {
        "kind": "cascade",
        "stages": [
            {"models": ["small"], "accept": [{"rule": "confidence", "threshold": -1}]},
            {"models": ["big"]},
        ],
    },
    "exact cache, hit (0 calls)": {"kind": "cache", "exact_only": True},
}


async def _app(plan: dict[str, Any] | None, stream: bool) -> tuple[Any, Any]:
    default: dict[str, Any] = {"models": ["small"]}
    if plan is not None:
        default["plan"] = plan
    config = parse_config({**CONFIG, "decisions": [], "default": default})
    app = create_app(config, store=MemoryTraceStore(), upstreams={"mem": InMemory()})
    await app.startup()
    body = orjson.dumps(
        {
            "model": "auto",
            "stream": stream,
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "Name three colours, please."}],
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


async def engine(n: int, rounds: int) -> None:
    for stream in (False, True):
        calls = {name: await _app(plan, stream) for name, plan in PLANS.items()}
        best = await best_cpu_us(calls, n, rounds)
        kind = "stream" if stream else "json"
        base = best["single call"]
        for name, us in best.items():
            print(f"{kind:6s} {name:30s} {us:7.1f} us CPU/request  ({us - base:+.1f} vs single)")
        if not stream:
            one_call = await _dispatch_cost(calls["single call"][0], n, rounds)
            escalated = best["cascade, escalated (2 calls)"] - base - one_call
            print(f"{kind:6s} one dispatcher call alone      {one_call:7.1f} us CPU")
            print(f"{kind:6s} escalated cascade beyond its calls: {escalated:+.1f} us CPU")
        for app, _ in calls.values():
            await app.shutdown()


async def _dispatch_cost(app: Any, n: int, rounds: int) -> float:
    """CPU µs of one ``Dispatcher.complete`` to the in-memory upstream, nothing around it."""
    from crossroads.types import Message, Request, Trace

    request = Request(
        "chat",
        "small",
        "openai_chat",
        messages=[Message("user", "Name three colours, please.")],
        max_tokens=50,
    )
    dispatcher = app.dispatcher
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            trace = Trace("t", time.time(), "small", "chat", False)
            await dispatcher.complete(["small"], request, trace, "")
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


def _vectors(n: int, dim: int = 384, seed: int = 0) -> Any:
    import numpy as np

    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def cache(entries: list[int], lookups: int, redis_url: str | None) -> None:
    for n in entries:
        stores: dict[str, Any] = {}
        from crossroads.plans.cache_store import MemoryCacheStore

        stores["memory"] = MemoryCacheStore(3600, n)
        if not redis_url:
            await _lookups(n, lookups, stores)
            continue
        from crossroads.plans.cache_redis import RedisCacheStore
        from crossroads.state import GuardedState, open_state

        opened = GuardedState(open_state(redis_url, timeout_s=2.0), 2.0, 1.0)
        prefix = f"bench-{uuid.uuid4().hex[:8]}:cache:d:"
        stores["redis"] = RedisCacheStore(opened, prefix, 3600, n)
        # A second worker: its index fills from the stream, then stays in sync.
        stores["redis (other worker)"] = RedisCacheStore(opened, prefix, 3600, n)
        try:
            await _lookups(n, lookups, stores)
        finally:
            await _delete(opened, prefix)


async def _lookups(n: int, lookups: int, stores: dict[str, Any]) -> None:
    """Fill the stores with ``n`` entries (the last store from the others' stream) and time
    exact hits, similar hits and misses."""
    import numpy as np

    from crossroads.plans.cache_store import Entry

    scope = "key:-\x00default\x00auto\x00shape"
    vectors = _vectors(n)
    now = time.time()
    for name, store in stores.items():
        if name.endswith("(other worker)"):
            while len(store.known_) < n:
                await store.exact(scope, "warm up")
            continue
        for i in range(n):
            entry = Entry(scope, f"prompt {i}", "small", "answer", "stop", now, vectors[i])
            await store.put(entry)
    rng = np.random.default_rng(1)
    near = vectors[rng.integers(0, n, lookups)] + rng.normal(0, 0.005, (lookups, 384))
    near = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float32)
    far = _vectors(lookups, seed=2)
    for name, store in stores.items():
        took = []
        for i in range(lookups):
            t0 = time.perf_counter()
            found = await store.exact(scope, f"prompt {i % n}")
            took.append((time.perf_counter() - t0) * 1e6)
            assert found is not None, name
        _print(n, name, "exact hit   ", took)
        for label, queries in (("hit", near), ("miss", far)):
            took = []
            for i, q in enumerate(queries):
                t0 = time.perf_counter()
                found = await store.exact(scope, f"unseen {i}")
                if found is None:
                    found, _ = await store.nearest(scope, q, 0.97)
                took.append((time.perf_counter() - t0) * 1e6)
                assert (found is not None) == (label == "hit"), (name, label)
            _print(n, name, f"similar {label:4s}", took)


async def _delete(state: Any, prefix: str) -> None:
    """Delete the run's keys (and close the pool)."""
    client = state.backend._redis()
    keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
    for i in range(0, len(keys), 1000):
        await client.delete(*keys[i : i + 1000])
    await state.backend.aclose()


def _print(n: int, store: str, what: str, took: list[float]) -> None:
    took = sorted(took)
    p50, p99 = statistics.median(took), took[int(0.99 * (len(took) - 1))]
    print(f"{n:6d} entries  {store:22s} {what}  p50 {p50:7.1f} us  p99 {p99:8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plans")
    sub = parser.add_subparsers(dest="what", required=True)
    e = sub.add_parser("engine")
    e.add_argument("--requests", type=int, default=5000)
    e.add_argument("--rounds", type=int, default=5)
    c = sub.add_parser("cache")
    c.add_argument("--entries", default="1000,10000")
    c.add_argument("--lookups", type=int, default=2000)
    c.add_argument("--redis", default=None)
    args = parser.parse_args()
    if args.what == "engine":
        asyncio.run(engine(args.requests, args.rounds))
    else:
        sizes = [int(x) for x in args.entries.split(",")]
        asyncio.run(cache(sizes, args.lookups, args.redis))


if __name__ == "__main__":
    main()
