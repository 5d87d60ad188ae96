"""What stalls the gateway's event loop under a closed-loop load, and for how long.

    python -m bench.stalls [--config crossroads-heuristic] [--duration 10] [--connections 16]
                           [--gc on|off] [--probe-ms 1] [--repeats 1]

Serves the config in this process (one worker, as ``crossroads serve`` does: uvloop, the
gateway's protocol, ``gc.freeze()`` after start-up), pinned to ``--cpu-sut``, while the fake
upstream and ``bench.loadgen`` (closed loop) run on ``--cpu-aux``. A probe task sleeps
``--probe-ms`` at a time and records how late it wakes (the loop's lag). Every cyclic-GC
collection (``gc.callbacks``) and every batch of the trace writer thread are timed, so each
lag over 5 ms can be put down to what overlapped it: a collection, a writer batch (the writer
holds the GIL while it encodes), or neither (the loop's own work, or the machine: the loop
thread's CPU time during the lag tells which).

Prints the load generator's latencies and a table of lags; ``--gc off`` runs the same with the
cyclic collector disabled, to show its share; ``--garbage`` counts, per request, the objects
only the cyclic collector could free (reference cycles), by type.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.procs import ROOT, free_port, start_fake_upstream

CONFIGS = ROOT / "bench" / "configs"
LAGS_MS = (2, 5, 10, 20, 50)


class Recorder:
    """Timestamps (perf_counter) of collections, writer batches and probe lags."""

    def __init__(self) -> None:
        self.gcs: list[tuple[float, float, int, float]] = []  # start, end, generation, cpu s
        self.batches: list[tuple[float, float, int, float]] = []  # start, end, rows, cpu s
        self.lags: list[tuple[float, float, float]] = []  # start, lag s, loop cpu s
        self._gc_start = self._gc_cpu = 0.0

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if phase == "start":
            self._gc_start, self._gc_cpu = now, cpu
        else:
            self.gcs.append((self._gc_start, now, info["generation"], cpu - self._gc_cpu))

    def wrap_writer(self, store: Any) -> None:
        write = store._write

        def timed(batch: list[Any]) -> None:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                write(batch)
            finally:
                self.batches.append((t0, time.perf_counter(), len(batch), time.thread_time() - c0))

        store._write = timed

    async def probe(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            t0, c0 = time.perf_counter(), time.thread_time()
            await asyncio.sleep(interval)
            lag = time.perf_counter() - t0 - interval
            if lag > 0.001:
                self.lags.append((t0, lag, time.thread_time() - c0))


def _overlap(a0: float, a1: float, spans: list[Any]) -> float:
    return sum(max(0.0, min(a1, s[1]) - max(a0, s[0])) for s in spans)


def summarise(rec: Recorder, window: tuple[float, float]) -> dict[str, Any]:
    """Lag counts and what overlapped the lags over 5 ms, inside ``window``."""
    lo, hi = window
    lags = [lag for lag in rec.lags if lo <= lag[0] <= hi]
    gcs = [g for g in rec.gcs if lo <= g[0] <= hi]
    batches = [b for b in rec.batches if lo <= b[0] <= hi]
    out: dict[str, Any] = {
        "lags_over_ms": {str(ms): sum(1 for lag in lags if lag[1] * 1000 > ms) for ms in LAGS_MS},
        "max_lag_ms": round(max((lag[1] for lag in lags), default=0) * 1000, 2),
        "collections": {
            str(gen): {
                "n": sum(1 for g in gcs if g[2] == gen),
                "max_ms": round(max((g[1] - g[0] for g in gcs if g[2] == gen), default=0) * 1e3, 2),
                "max_cpu_ms": round(max((g[3] for g in gcs if g[2] == gen), default=0) * 1e3, 2),
                "total_cpu_ms": round(sum(g[3] for g in gcs if g[2] == gen) * 1e3, 1),
            }
            for gen in (0, 1, 2)
        },
        "writer_batches": {
            "n": len(batches),
            "rows_mean": round(sum(b[2] for b in batches) / max(1, len(batches)), 1),
            "max_ms": round(max((b[1] - b[0] for b in batches), default=0) * 1e3, 2),
            "cpu_ms_total": round(sum(b[3] for b in batches) * 1e3, 1),
        },
    }
    big = [lag for lag in lags if lag[1] > 0.005]
    blamed = {"gc": 0, "writer": 0, "loop cpu": 0, "neither (machine)": 0}
    for start, lag, cpu in big:
        end = start + lag
        if _overlap(start, end, gcs) > lag / 4:
            blamed["gc"] += 1
        elif _overlap(start, end, batches) > lag / 4:
            blamed["writer"] += 1
        elif cpu > lag / 2:
            blamed["loop cpu"] += 1
        else:
            blamed["neither (machine)"] += 1
    out["lags_over_5ms_overlapping"] = blamed
    return out


async def serve_and_load(args: argparse.Namespace, upstream_url: str) -> dict[str, Any]:
    import uvicorn

    from crossroads.config import load_config
    from crossroads.gateway import create_app
    from crossroads.serve import server_options

    os.environ["FAKE_UPSTREAM_BASE"] = upstream_url
    os.environ.setdefault("CROSSROADS_BENCH_TRACES", "sqlite:///bench/out/stalls-traces.db")
    cfg = load_config(CONFIGS / f"{args.config}.yaml")
    port = free_port()
    app = create_app(cfg, freeze_gc=True)
    options = server_options(cfg, "127.0.0.1", port)
    options.pop("loop")
    server = uvicorn.Server(uvicorn.Config(app, **options, loop="none"))
    rec = Recorder()
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    if hasattr(app.store, "_write"):
        rec.wrap_writer(app.store)
    gc.callbacks.append(rec.on_gc)
    if args.gen0:
        gc.set_threshold(args.gen0)
    if args.gc == "off":
        gc.disable()
    if args.garbage:
        gc.set_debug(gc.DEBUG_SAVEALL)
    stop = asyncio.Event()
    # --probe-ms 0: no probe, for CPU per request without the probe's own wake-ups
    probing = asyncio.create_task(
        rec.probe(args.probe_ms / 1000, stop) if args.probe_ms else stop.wait()
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    cmd = [sys.executable, "-m", "bench.loadgen", "--url", url, "--model", "auto"]
    cmd += ["--mode", "closed", "--connections", str(args.connections)]
    cmd += ["--duration", str(args.duration), "--warmup", str(args.warmup)]
    if args.cpu_aux and Path("/usr/bin/taskset").exists():
        cmd = ["taskset", "-c", args.cpu_aux, *cmd]
    t0 = time.perf_counter()
    times0 = os.times()
    load = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await load.communicate()
    times1 = os.times()
    user, system = times1.user - times0.user, times1.system - times0.system
    stop.set()
    await probing
    gc.callbacks.remove(rec.on_gc)
    gc.enable()
    garbage: Counter[str] = Counter()
    if args.garbage:
        gc.collect()
        gc.set_debug(0)
        garbage.update(type(o).__qualname__ for o in gc.garbage)
        gc.garbage.clear()
    summary = orjson.loads(out.splitlines()[-1])
    server.should_exit = True
    await serving
    window = (t0 + args.warmup + 0.5, t0 + args.warmup + 0.5 + args.duration)
    result = summarise(rec, window)
    lat = summary["latency_ms"]
    result["load"] = {
        "throughput": summary["throughput"],
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "max_ms": lat["max"],
        "errors": summary["errors"],
        "server_cpu_us_per_req": round((user + system) / max(1, summary["sent_total"]) * 1e6, 1),
        "server_user_us_per_req": round(user / max(1, summary["sent_total"]) * 1e6, 1),
        "server_system_us_per_req": round(system / max(1, summary["sent_total"]) * 1e6, 1),
    }
    if args.garbage:
        sent = max(1, summary["sent_total"])
        result["cyclic_garbage_per_request"] = {
            name: round(n / sent, 2) for name, n in garbage.most_common(15)
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stalls", description=__doc__)
    parser.add_argument("--config", default="crossroads-heuristic")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--gc", choices=["on", "off"], default="on")
    parser.add_argument(
        "--gen0", type=int, default=0, help="the GC's first threshold (default: the gateway's)"
    )
    parser.add_argument("--probe-ms", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--garbage",
        action="store_true",
        help="keep what the cyclic GC frees (gc.DEBUG_SAVEALL) and count it by type",
    )
    parser.add_argument("--cpu-sut", default="1")
    parser.add_argument("--cpu-aux", default="0")
    args = parser.parse_args(argv)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        os.sched_setaffinity(0, {int(c) for c in args.cpu_sut.split(",")})
    upstream = start_fake_upstream(args.cpu_aux, 8, 120 + args.repeats * (args.duration + 30))
    try:
        import uvloop

        for _ in range(args.repeats):
            result = uvloop.run(serve_and_load(args, upstream.url))
            print(orjson.dumps(result).decode(), flush=True)
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
