"""CPU cost per call of crossroads' OpenAI upstream on its two HTTP clients, against the
fake upstream in its own process.

    python -m bench.upstream_client --requests 20000 --concurrency 16 [--rounds 2]

Measures, in one process on one pinned core, interleaved and repeated ``--rounds`` times:

* ``aiohttp session``: the bare pooled ``aiohttp.ClientSession`` call of ``bench.client_cost``;
* ``loadgen Connection``: the minimal raw client of ``bench.loadgen`` (no pool, no timeouts);
* ``rawhttp pool``: :class:`crossroads.dispatch.rawhttp.ConnectionPool.fetch`;
* ``OpenAIUpstream.complete`` and ``.stream`` (8 chunks), on aiohttp (``https``-style path)
  and on the raw client (what ``http://`` base URLs now use).

Also times the two ways of arming a per-call deadline (``--timers``): an
``asyncio.timeout`` context against one ``loop.call_at`` handle cancelled at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.client_cost import BODY, with_aiohttp, with_raw
from bench.procs import start_fake_upstream

Run = Callable[[str, int, int], Awaitable[None]]


def _upstream(base_url: str, client: str) -> Any:
    from crossroads.config import OpenAIUpstreamConfig as Config
    from crossroads.dispatch.openai import OpenAIUpstream

    return OpenAIUpstream(Config(name="bench", base_url=base_url, http_client=client))


def upstream_complete(client: str) -> Run:
    async def run(base_url: str, requests: int, concurrency: int) -> None:
        upstream = _upstream(base_url, client)

        async def worker(n: int) -> None:
            for _ in range(n):
                await upstream.complete("chat", BODY)

        try:
            await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        finally:
            await upstream.aclose()

    return run


def upstream_stream(client: str) -> Run:
    body = {**BODY, "stream": True}

    async def run(base_url: str, requests: int, concurrency: int) -> None:
        upstream = _upstream(base_url, client)

        async def worker(n: int) -> None:
            for _ in range(n):
                events = upstream.stream("chat", body)
                async for frame in events:
                    if frame == b"data: [DONE]\n\n":
                        break
                await events.aclose()

        try:
            await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        finally:
            await upstream.aclose()

    return run


async def raw_pool(base_url: str, requests: int, concurrency: int) -> None:
    from urllib.parse import urlsplit

    from crossroads.config import Timeouts
    from crossroads.dispatch.rawhttp import ConnectionPool

    parts = urlsplit(base_url)
    pool = ConnectionPool(
        parts.hostname or "127.0.0.1", parts.port or 80, name="bench", timeouts=Timeouts()
    )
    head = pool.request_head(
        "POST", parts.path + "/chat/completions", {"content-type": "application/json"}
    )

    async def worker(n: int) -> None:
        for _ in range(n):
            _, _, raw = await pool.fetch(head, orjson.dumps(BODY))
            orjson.loads(raw)

    try:
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    finally:
        await pool.aclose()


def _chat_url(run: Run) -> Run:
    async def wrapped(base_url: str, requests: int, concurrency: int) -> None:
        await run(base_url + "/chat/completions", requests, concurrency)

    return wrapped


CLIENTS: list[tuple[str, Run]] = [
    ("aiohttp session", _chat_url(with_aiohttp)),
    ("loadgen Connection", _chat_url(with_raw)),
    ("rawhttp pool", raw_pool),
    ("OpenAIUpstream.complete aiohttp", upstream_complete("aiohttp")),
    ("OpenAIUpstream.complete raw", upstream_complete("raw")),
    ("OpenAIUpstream.stream aiohttp", upstream_stream("aiohttp")),
    ("OpenAIUpstream.stream raw", upstream_stream("raw")),
]


def measure(run: Run, base_url: str, requests: int, concurrency: int) -> tuple[float, float]:
    """CPU µs per call and calls per second of one client, after a warm-up."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(base_url, 500, concurrency))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        runner.run(run(base_url, requests, concurrency))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / requests * 1e6, requests / wall


def timers(n: int = 200_000) -> dict[str, float]:
    """ns per call of an ``asyncio.timeout`` context vs a ``call_at`` handle, around an
    await that completes at once (what a fast upstream call looks like to its deadline)."""
    import uvloop

    async def with_timeout() -> float:
        loop = asyncio.get_running_loop()
        start = time.process_time()
        for _ in range(n):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            async with asyncio.timeout(60):
                await fut
        return (time.process_time() - start) / n * 1e9

    async def with_call_at() -> float:
        loop = asyncio.get_running_loop()
        start = time.process_time()
        for _ in range(n):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            handle = loop.call_at(loop.time() + 60, fut.cancel)
            await fut
            handle.cancel()
        return (time.process_time() - start) / n * 1e9

    async def bare() -> float:
        loop = asyncio.get_running_loop()
        start = time.process_time()
        for _ in range(n):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut
        return (time.process_time() - start) / n * 1e9

    out = {}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for _ in range(2):
            for name, fn in (("bare", bare), ("asyncio.timeout", with_timeout)):
                out[name] = round(runner.run(fn()))
            out["loop.call_at + cancel"] = round(runner.run(with_call_at()))
    return out


def main(argv: list[str] | None = None) -> None:
    """Print one JSON line per client and round, then the timer comparison."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_client")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpu-client", type=int, default=1)
    parser.add_argument("--cpu-upstream", default="0")
    parser.add_argument("--only", default="", help="comma-separated client names (substrings)")
    parser.add_argument("--timers", action="store_true", help="only the timer comparison")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu_client})
    if args.timers:
        print(orjson.dumps({"ns_per_call": timers()}).decode())
        return
    upstream = start_fake_upstream(args.cpu_upstream, 8, 3600)
    wanted = [w for w in args.only.split(",") if w]
    clients = [(n, r) for n, r in CLIENTS if not wanted or any(w in n for w in wanted)]
    results: dict[str, list[float]] = {}
    try:
        for round_ in range(args.rounds):
            for name, run in clients:
                cpu, rate = measure(run, upstream.url, args.requests, args.concurrency)
                results.setdefault(name, []).append(cpu)
                line = {"round": round_, "client": name, "cpu_us_per_call": round(cpu, 1)}
                print(orjson.dumps({**line, "calls_per_s": round(rate)}).decode(), flush=True)
    finally:
        upstream.stop()
    base = min(results.get("aiohttp session", [0.0])) or None
    for name, cpus in results.items():
        summary = {"client": name, "cpu_us_min": round(min(cpus), 1)}
        if base:
            summary["x_aiohttp_session"] = round(min(cpus) / base, 3)
        print(orjson.dumps(summary).decode())


if __name__ == "__main__":
    main()
