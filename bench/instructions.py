"""Instructions per request of the gateway, counted by valgrind's callgrind: deterministic,
so two checkouts (or a commit and its baseline) compare on a busy machine where CPU time
cannot. User-space instructions only: system calls and the kernel's share are not counted.

    python -m bench.instructions [--requests 300] [--stream] [--metrics off] [--policy heuristic]
    python -m bench.instructions --wire [--stream] [--traces none]   # crossroads serve over loopback
    python -m bench.instructions --limits redis://127.0.0.1:6379/0   # with limits (or: none)
    python -m bench.instructions --trace-json 1000   # store.base.trace_json alone, per trace

In process, the request path of ``bench.request_path`` (parsing, routing, format conversion,
dispatch bookkeeping, settlement, trace assembly) runs under callgrind with collection off
until it is warm; over the wire, ``crossroads serve`` with the heuristic benchmark config runs
under callgrind and answers sequential requests from one client (traces on by default: the
writer thread is counted; with ``--stream`` each answer is a stream of the fake upstream's 8
content deltas, read to its end). Prints instructions per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WARM = 50
COLLECTED = re.compile(r"Collected\s*:\s*([\d,]+)")


def _callgrind(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    out = Path(tempfile.mkdtemp()) / "callgrind.out"
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"] + cmd,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def _collected(stderr: bytes) -> int:
    return sum(int(m.replace(",", "")) for m in COLLECTED.findall(stderr.decode()))


def _toggle(pid: int, on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(pid)],
        check=False,
        capture_output=True,
    )


def in_process(
    requests: int,
    stream: bool,
    metrics: bool = True,
    policy: str = "small",
    limits: str | None = None,
    trace_json: bool = False,
) -> float:
    """Instructions per request of the in-process request path; ``limits``: a state
    backend for the bench key's limits (``bench.request_path.limited``), or ``none`` for
    the same key without a policy. ``trace_json``: instead, the encoding of each request's
    trace (``store.base.trace_json``), the traces made first, uncounted."""
    cmd = [sys.executable, "-m", "bench.instructions", "--child", str(requests)]
    cmd += ["--stream"] if stream else []
    cmd += [] if metrics else ["--metrics", "off"]
    cmd += ["--policy", policy]
    cmd += ["--limits", limits] if limits else []
    cmd += ["--trace-json", "1"] if trace_json else []
    child = _callgrind(cmd, cwd=os.getcwd())
    _, err = child.communicate(timeout=1800)
    if child.returncode != 0:
        raise SystemExit(err.decode()[-2000:])
    return _collected(err) / requests


async def _child(
    requests: int, stream: bool, metrics: bool, policy: str, limits: str | None, encode: bool
) -> None:
    from bench.request_path import _forget_state, app_and_request, limited
    from crossroads.store.base import trace_json

    extra = None if limits is None else limited(None if limits == "none" else limits)
    app, call = await app_and_request(stream, metrics, policy, extra)
    for _ in range(WARM):
        await call()
    if encode:
        for _ in range(requests):
            await call()
        traces = list(app.store._traces)[-requests:]
        # The traces kept here would make the collector's passes count (a served process
        # collects seldom: freeze_gc).
        gc.collect()
        gc.disable()
        _toggle(os.getpid(), True)
        for trace in traces:
            trace_json(trace)
        _toggle(os.getpid(), False)
        gc.enable()
        await app.shutdown()
        return
    _toggle(os.getpid(), True)
    for _ in range(requests):
        await call()
    if limits is not None:
        await app.limits.settler.drain(30.0)  # the settlements of these requests, counted
    _toggle(os.getpid(), False)
    await _forget_state(app)
    await app.shutdown()


def over_the_wire(requests: int, traces: str, stream: bool = False) -> float:
    """Instructions per request of ``crossroads serve`` answering one client (``stream``:
    streamed answers, each read whole)."""
    import httpx

    from bench.procs import ROOT, free_port, start_fake_upstream

    upstream = start_fake_upstream(None, 8, 1800)
    port = free_port()
    env = {**os.environ, "FAKE_UPSTREAM_BASE": upstream.url, "CROSSROADS_BENCH_TRACES": traces}
    config = ROOT / "bench" / "configs" / "crossroads-heuristic.yaml"
    serve = [sys.executable, "-m", "crossroads.cli", "serve", "-c", str(config)]
    server = _callgrind([*serve, "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    body = {
        "model": "auto",
        "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Name three colours, please, and say why."},
        ],
    }
    if stream:
        body["stream"] = True
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(1200):  # valgrind starts Python slowly
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            for _ in range(WARM):
                client.post("/v1/chat/completions", json=body).raise_for_status()
            _toggle(server.pid, True)
            for _ in range(requests):
                client.post("/v1/chat/completions", json=body).raise_for_status()
            time.sleep(1.5)  # the trace writer flushes what these requests queued
            _toggle(server.pid, False)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=300)
        upstream.stop()
    return _collected(err) / requests


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--wire", action="store_true", help="crossroads serve over loopback")
    parser.add_argument("--traces", default="sqlite:///bench/out/instructions-traces.db")
    parser.add_argument(
        "--metrics",
        choices=["on", "off"],
        default="on",
        help="in process: the metrics section (over the wire: CROSSROADS_BENCH_METRICS)",
    )
    parser.add_argument(
        "--policy",
        choices=["small", "heuristic"],
        default="small",
        help="in process: bench.request_path's config, or the signals and decisions of "
        "crossroads-heuristic (what --wire serves)",
    )
    parser.add_argument(
        "--limits",
        metavar="STATE",
        help="in process: the bench key's limits counted in this state backend (redis://...), "
        "or 'none' (the key without a policy)",
    )
    parser.add_argument(
        "--trace-json",
        type=int,
        metavar="N",
        help="in process: instructions per trace of store.base.trace_json over N traces",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child = _child(
            args.child, args.stream, args.metrics == "on", args.policy, args.limits, args.trace_json
        )
        asyncio.run(child)
        return
    if args.trace_json:
        n = in_process(args.trace_json, args.stream, args.metrics == "on", args.policy, None, True)
        print(f"trace_json, {args.policy} policy: {n:,.0f} instructions per trace")
        return
    if args.wire:
        n = over_the_wire(args.requests, args.traces, args.stream)
        kind = "stream" if args.stream else "json"
        print(f"wire {kind} ({args.traces}): {n:,.0f} instructions per request")
    else:
        n = in_process(args.requests, args.stream, args.metrics == "on", args.policy, args.limits)
        kind = "stream" if args.stream else "json"
        print(
            f"{kind}, {args.policy} policy, metrics {args.metrics}"
            + (f", limits {args.limits}" if args.limits else "")
            + f": {n:,.0f} instructions per request"
        )


if __name__ == "__main__":
    main()
