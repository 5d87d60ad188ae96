"""One admission in Redis, alone: what the gateway's client costs against redis-py's and
the bare round trip, sequential calls from one event loop (uvloop).

    python -m bench.state_roundtrip [--url redis://127.0.0.1:6379/0] [--calls 3000]

Three ways to run the admission script of ``crossroads.state.redis`` (three rate windows
and two budgets, the shape of ``bench/configs/crossroads-limits.yaml``): the state backend
(its pipelined client), redis-py's asyncio client over a connection pool (what the backend
used before), and ``PING`` on the gateway's client (the round trip with no script). Prints
CPU µs and wall-clock p50 µs per call, best of ``--rounds``. Keys live under a prefix of
this run and are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from crossroads.state import Budget, Window
from crossroads.state.redis import ADMIT, RedisState, _pack


async def _measure(calls: int, one: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    waits = []
    cpu = time.process_time()
    for i in range(calls):
        started = time.perf_counter()
        await one(i)
        waits.append(time.perf_counter() - started)
    return (time.process_time() - cpu) / calls * 1e6, statistics.median(waits) * 1e6


async def run(url: str, calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    """(CPU µs, p50 µs) per call of each way, best round."""
    import redis.asyncio as aioredis

    prefix = f"crossroads-roundtrip-{os.getpid()}:"
    now = time.time()
    windows = [
        Window(f"{prefix}rate:key:rpm", 1, 10**12, 120),
        Window(f"{prefix}rate:key:tpm", 60, 10**15, 120),
        Window(f"{prefix}rate:team:rpm", 1, 10**12, 120),
    ]
    budgets = [
        Budget(f"{prefix}budget:key:d", 10**18, 3600),
        Budget(f"{prefix}budget:team:m", 10**18, 3600),
    ]
    state = RedisState(url, timeout_s=1.0)
    await state.admit(windows, budgets, [1000], "warm", now + 60, now)  # loads the scripts
    client = aioredis.Redis.from_url(url)
    sha = await client.script_load(ADMIT)
    keys = [w.key for w in windows] + [k for b in budgets for k in (b.key, b.key + ":holds")]

    async def ours(i: int) -> None:
        await state.admit(windows, budgets, [1000], f"a{i}", now + 60, now)

    async def redis_py(i: int) -> None:
        args: list[Any] = [3, 2, 1, now, f"b{i}", now + 60]
        for w in windows:
            args += (w.cost, w.limit, w.ttl_s)
        for b in budgets:
            args += (b.limit, b.ttl_s)
        await client.evalsha(sha, len(keys), *keys, _pack([*args, 1000]))

    async def ping(i: int) -> None:
        await state._resp().execute("PING")

    ways = {
        "admit, gateway client": ours,
        "admit, redis-py": redis_py,
        "PING, gateway client": ping,
    }
    best = {name: (float("inf"), float("inf")) for name in ways}
    for _ in range(rounds):
        for name, one in ways.items():
            cpu, p50 = await _measure(calls, one)
            best[name] = (min(best[name][0], cpu), min(best[name][1], p50))
    stale = [key async for key in client.scan_iter(f"{prefix}*")]
    if stale:
        await client.delete(*stale)
    await client.aclose()
    await state.aclose()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.state_roundtrip")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import uvloop

    best = uvloop.run(run(args.url, args.calls, args.rounds))
    for name, (cpu, p50) in best.items():
        print(f"{name}: {cpu:.1f} us CPU per call, p50 {p50:.1f} us")


if __name__ == "__main__":
    main()
