"""CPU cost per upstream call of HTTP clients a gateway could use, against the fake upstream.

    python -m bench.client_cost --requests 20000 --concurrency 16

Runs the same non-streamed chat request through (1) a pooled ``aiohttp.ClientSession``
configured like crossroads' OpenAI upstream, and (2) the raw asyncio + httptools
connection of :mod:`bench.loadgen`, and prints the client process's CPU microseconds per
call. The upstream runs in its own process, pinned away from the client.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import orjson

from bench.loadgen import Connection, LoadSpec, build_request
from bench.procs import start_fake_upstream

BODY = {"model": "fake-small", "messages": [{"role": "user", "content": "hello there"}]}


async def with_aiohttp(url: str, requests: int, concurrency: int) -> None:
    """``requests`` calls over a pooled aiohttp session, ``concurrency`` at a time."""
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000),
        timeout=aiohttp.ClientTimeout(total=60, connect=5, sock_read=60),
        headers={"content-type": "application/json"},
        skip_auto_headers=("User-Agent",),
    )
    payload = orjson.dumps(BODY)

    async def worker(n: int) -> None:
        for _ in range(n):
            async with session.post(url, data=payload) as resp:
                orjson.loads(await resp.read())

    try:
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    finally:
        await session.close()


async def with_raw(url: str, requests: int, concurrency: int) -> None:
    """The same calls on raw asyncio protocols parsed by httptools, one per connection."""
    host, port, request = build_request(LoadSpec(url=url))
    loop = asyncio.get_running_loop()

    async def worker(n: int) -> None:
        _, conn = await loop.create_connection(lambda: Connection(request, False), host, port)
        for _ in range(n):
            await conn.send()
        conn.close()

    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))


def measure(name: str, run: Any, url: str, requests: int, concurrency: int) -> dict[str, Any]:
    """CPU µs and wall µs per call of one client."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(url, 500, concurrency))  # warm up
        cpu0, wall0 = time.process_time(), time.perf_counter()
        runner.run(run(url, requests, concurrency))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "client": name,
        "cpu_us_per_call": round(cpu / requests * 1e6, 1),
        "calls_per_s": round(requests / wall),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the CPU cost per call of each client."""
    import os

    parser = argparse.ArgumentParser(prog="python -m bench.client_cost")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cpu-client", type=int, default=1)
    parser.add_argument("--cpu-upstream", default="0")
    args = parser.parse_args(argv)
    upstream = start_fake_upstream(args.cpu_upstream, 4, 600)
    os.sched_setaffinity(0, {args.cpu_client})
    url = upstream.url + "/chat/completions"
    try:
        for _ in range(2):
            for name, run in (("aiohttp", with_aiohttp), ("raw asyncio + httptools", with_raw)):
                print(
                    orjson.dumps(measure(name, run, url, args.requests, args.concurrency)).decode()
                )
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
