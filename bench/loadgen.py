"""A load generator for OpenAI-compatible servers: raw asyncio + httptools, one process.

Two modes:

* closed loop: ``connections`` keep-alive connections, each sends its next request as
  soon as the previous answer is complete, for ``duration`` seconds: max throughput;
* open loop: requests start at a fixed ``rate`` whatever the server does; latency is
  measured from the *intended* start (no coordinated omission), so a saturated server
  shows as growing latency and a falling achieved rate.

Streams record time to first body byte (``ttfb``) and to the end of the body. The
generator reports its own CPU use: near 100% means it, not the server, was the limit.

    python -m bench.loadgen --url http://127.0.0.1:9100/v1/chat/completions \\
        --mode open --rate 500 --duration 10 [--stream]

prints one JSON object (see :func:`summarise`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

DONE_TAIL = b"data: [DONE]\n\n"
ERROR_EVENT = b'data: {"error"'  # a gateway's in-stream error, followed by [DONE]
DEFAULT_PROMPT = "Write one short sentence about routers."


@dataclass(slots=True)
class Sample:
    """One finished request: when it was meant to start, when it started, first byte, end."""

    intended: float
    sent: float
    first: float
    end: float
    status: int
    ok: bool


@dataclass(slots=True)
class LoadSpec:
    """What to send and how hard."""

    url: str
    model: str = "fake-small"
    stream: bool = False
    mode: str = "closed"  # "closed" | "open"
    connections: int = 16  # closed: the concurrency; open: connections opened up front
    max_connections: int = 512  # open loop: never more than this in flight
    rate: float = 100.0  # open loop, requests per second
    duration: float = 10.0
    warmup: float = 1.0
    timeout: float = 30.0
    prompt: str = DEFAULT_PROMPT
    api_key: str = "bench"
    extra_body: dict[str, Any] = field(default_factory=dict)


def build_request(spec: LoadSpec) -> tuple[str, int, bytes]:
    """The exact bytes of one HTTP/1.1 request, and where to send them."""
    parts = urlsplit(spec.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body: dict[str, Any] = {
        "model": spec.model,
        "messages": [{"role": "user", "content": spec.prompt}],
    }
    if spec.url.endswith("/completions") and not spec.url.endswith("chat/completions"):
        body = {"model": spec.model, "prompt": spec.prompt}
    if spec.stream:
        body["stream"] = True
    body.update(spec.extra_body)
    payload = orjson.dumps(body)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {spec.api_key}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return host, port, head.encode() + payload


class Connection(asyncio.Protocol):
    """One keep-alive connection that carries one request at a time."""

    def __init__(self, request: bytes, stream: bool) -> None:
        self.request = request
        self.stream = stream
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.future: asyncio.Future[tuple[int, float, float, bool]] | None = None
        self.first = 0.0
        self.tail = b""
        self.error_event = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("server closed the connection"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        if not self.first:
            self.first = time.perf_counter()
        joined = self.tail + body
        if self.stream and ERROR_EVENT in joined:
            self.error_event = True
        self.tail = joined[-len(ERROR_EVENT) :]

    def on_message_complete(self) -> None:
        end = time.perf_counter()
        status = self.parser.get_status_code()
        done = self.tail.endswith(DONE_TAIL)
        ok = status == 200 and (not self.stream or (done and not self.error_event))
        if not self.parser.should_keep_alive():
            self.close()
        if self.future is not None and not self.future.done():
            self.future.set_result((status, self.first or end, end, ok))

    def _fail(self, exc: BaseException) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_exception(exc)

    async def send(self) -> tuple[int, float, float, bool]:
        """Send the request; return ``(status, first_byte, end, ok)``."""
        self.future = asyncio.get_running_loop().create_future()
        self.first = 0.0
        self.tail = b""
        self.error_event = False
        assert self.transport is not None
        self.transport.write(self.request)
        return await self.future

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LoadGenerator:
    """Runs one :class:`LoadSpec` and collects :class:`Sample` objects."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.host, self.port, self.request = build_request(spec)
        self.samples: list[Sample] = []
        self.errors: dict[str, int] = {}
        self.measure_from = 0.0
        self.measure_to = 0.0
        self.peak_in_flight = 0
        self.sent = 0  # every request, warm-up included (for CPU per request)
        self._in_flight = 0

    async def connect(self) -> Connection:
        """Open one connection to the server under test."""
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: Connection(self.request, self.spec.stream), self.host, self.port
        )
        return conn

    async def one(self, conn: Connection | None, intended: float) -> Connection | None:
        """Send one request on ``conn`` (or a new connection); record it; return the connection."""
        self._in_flight += 1
        self.sent += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            if conn is None or conn.closed:
                conn = await asyncio.wait_for(self.connect(), self.spec.timeout)
            sent = time.perf_counter()
            status, first, end, ok = await asyncio.wait_for(conn.send(), self.spec.timeout)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            name = type(exc).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
            if conn is not None:
                conn.close()
            if intended >= self.measure_from:
                now = time.perf_counter()
                self.samples.append(Sample(intended, intended, now, now, 0, False))
            return None
        finally:
            self._in_flight -= 1
        if intended >= self.measure_from:
            self.samples.append(Sample(intended, sent, first, end, status, ok))
            if not ok:
                key = f"status {status}" if status != 200 else "stream error event or no [DONE]"
                self.errors[key] = self.errors.get(key, 0) + 1
        return conn

    async def closed_loop(self) -> None:
        """``connections`` clients in a loop until the end of the window."""
        start = time.perf_counter()
        self.measure_from = start + self.spec.warmup
        self.measure_to = self.measure_from + self.spec.duration

        async def client() -> None:
            conn: Connection | None = None
            while (now := time.perf_counter()) < self.measure_to:
                conn = await self.one(conn, now)
                if conn is None:
                    await asyncio.sleep(0.01)  # do not spin on a refusing server
            if conn is not None:
                conn.close()

        await asyncio.gather(*(client() for _ in range(self.spec.connections)))

    async def open_loop(self) -> None:
        """Start requests at ``rate`` per second, on idle connections or new ones."""
        spec = self.spec
        idle = [await self.connect() for _ in range(spec.connections)]
        start = time.perf_counter() + 0.05
        self.measure_from = start + spec.warmup
        self.measure_to = self.measure_from + spec.duration
        total = int((spec.warmup + spec.duration) * spec.rate)
        slots = asyncio.Semaphore(spec.max_connections)
        tasks: set[asyncio.Task[None]] = set()

        async def run(intended: float) -> None:
            async with slots:
                conn = await self.one(idle.pop() if idle else None, intended)
                if conn is not None:
                    idle.append(conn)

        for i in range(total):
            intended = start + i / spec.rate
            delay = intended - time.perf_counter()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(run(intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=spec.timeout + 1)
        for conn in idle:
            conn.close()

    async def run(self) -> dict[str, Any]:
        """Run the spec; return :func:`summarise` of it."""
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if self.spec.mode == "closed":
            await self.closed_loop()
        else:
            await self.open_loop()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return summarise(self, cpu / wall if wall else 0.0)


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of already-sorted values, nearest rank; 0 for none."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _ms_stats(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50": round(percentile(values, 0.50) * 1000, 3),
        "p90": round(percentile(values, 0.90) * 1000, 3),
        "p99": round(percentile(values, 0.99) * 1000, 3),
        "max": round(values[-1] * 1000, 3) if values else 0.0,
        "mean": round(sum(values) / len(values) * 1000, 3) if values else 0.0,
    }


def summarise(gen: LoadGenerator, cpu_fraction: float) -> dict[str, Any]:
    """Throughput, latency percentiles (ms), errors and the generator's own CPU use.

    ``latency`` runs from the send to the end of the body, ``ttfb`` to the first body
    byte; ``latency_from_intended`` runs from the intended start (open loop: includes
    queueing when the server falls behind); ``lag`` is how late the generator sent
    (high lag: the generator or its core was the limit).
    """
    window = [s for s in gen.samples if s.intended < gen.measure_to]
    ok = [s for s in window if s.ok]
    span = max(
        1e-9,
        min(gen.measure_to, max((s.end for s in window), default=gen.measure_to))
        - gen.measure_from,
    )
    done_in_window = sum(1 for s in ok if s.end <= gen.measure_to)
    return {
        "mode": gen.spec.mode,
        "stream": gen.spec.stream,
        "rate_target": gen.spec.rate if gen.spec.mode == "open" else None,
        "connections": gen.spec.connections,
        "duration": gen.spec.duration,
        "requests": len(window),
        "sent_total": gen.sent,
        "ok": len(ok),
        "errors": len(window) - len(ok),
        "error_kinds": gen.errors,
        "throughput": round(done_in_window / span, 1),
        "latency_ms": _ms_stats([s.end - s.sent for s in ok]),
        "ttfb_ms": _ms_stats([s.first - s.sent for s in ok]),
        "latency_from_intended_ms": _ms_stats([s.end - s.intended for s in ok]),
        "lag_ms": _ms_stats([s.sent - s.intended for s in ok]),
        "peak_in_flight": gen.peak_in_flight,
        "loadgen_cpu": round(cpu_fraction, 3),
        "loadgen_saturated": cpu_fraction > 0.9,
    }


def run_spec(spec: LoadSpec, dump: str | None = None) -> dict[str, Any]:
    """Run ``spec`` on a fresh (uv)loop and return its summary (and dump every sample:
    ``[intended, sent, first, end, status, ok]`` with times relative to the first)."""

    def new_loop() -> asyncio.AbstractEventLoop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover
            return asyncio.new_event_loop()
        return uvloop.new_event_loop()

    gen = LoadGenerator(spec)
    with asyncio.Runner(loop_factory=new_loop) as runner:
        result = runner.run(gen.run())
    if dump:
        t0 = min((s.intended for s in gen.samples), default=0.0)
        rows = [
            [
                round(s.intended - t0, 6),
                round(s.sent - t0, 6),
                round(s.first - t0, 6),
                round(s.end - t0, 6),
                s.status,
                s.ok,
            ]
            for s in gen.samples
        ]
        with open(dump, "wb") as out:
            out.write(
                orjson.dumps(
                    {"start_unix": time.time() - (time.perf_counter() - t0), "samples": rows}
                )
            )
    return result


def _parse_args(argv: list[str] | None) -> tuple[LoadSpec, str | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--url", required=True, help="full URL, e.g. http://127.0.0.1:9100/v1/chat/completions"
    )
    parser.add_argument("--model", default="fake-small")
    parser.add_argument("--mode", choices=["closed", "open"], default="closed")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--max-connections", type=int, default=512)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--api-key", default="bench", help="sent as a Bearer token")
    parser.add_argument("--dump", default=None, help="write every sample (JSON) to this file")
    parser.add_argument("--extra-body", default="{}", help="JSON merged into the request body")
    args = parser.parse_args(argv)
    spec = LoadSpec(
        url=args.url,
        model=args.model,
        stream=args.stream,
        mode=args.mode,
        connections=args.connections,
        max_connections=args.max_connections,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        timeout=args.timeout,
        prompt=args.prompt,
        api_key=args.api_key,
        extra_body=orjson.loads(args.extra_body),
    )
    return spec, args.dump


def main(argv: list[str] | None = None) -> None:
    """Run one load spec from the command line and print its JSON summary."""
    spec, dump = _parse_args(argv)
    result = run_spec(spec, dump)
    result["pid"] = os.getpid()
    with contextlib.suppress(AttributeError, OSError):
        result["cpus"] = sorted(os.sched_getaffinity(0))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
