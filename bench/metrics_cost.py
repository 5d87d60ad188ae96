"""Instructions per request of counting it, by callgrind: crossroads' own aggregation
(:class:`crossroads.observe.metrics.RequestMetrics`) against prometheus-client's metric
objects updated the same way (the same families, labels and buckets), on traces the
in-process request path of ``bench.request_path`` produced.

    python -m bench.metrics_cost [--traces 512]

Variants: ``crossroads`` (observe, and the fold of what was observed); ``prometheus-cached``
(label children looked up once, then ``inc``/``observe``: the least prometheus-client can
cost); ``prometheus-labels`` (``labels(...)`` at each update); and both again in
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``: mmap'ed files). Each
is measured as the difference from a loop that does nothing with the traces.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from typing import Any

from bench.instructions import _callgrind, _collected, _toggle

VARIANTS = (
    "nothing",
    "crossroads",
    "prometheus-cached",
    "prometheus-labels",
    "prometheus-multiprocess-cached",
    "prometheus-multiprocess-labels",
)
PASSES = 2


async def _traces(n: int) -> list[Any]:
    from bench.request_path import app_and_request

    app, call = await app_and_request(False, False)
    for _ in range(n):
        await call()
    traces = list(app.store._traces)  # type: ignore[attr-defined]
    await app.shutdown()
    return traces


def _prometheus(cached: bool) -> Any:
    """A function that counts one trace with prometheus-client objects."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from crossroads.observe.metrics import ENTRY, FAMILIES, STATUS_CLASS, STREAM

    registry = CollectorRegistry()

    def metric(name: str) -> Any:
        f = FAMILIES[name]
        if f.kind == "histogram":
            return Histogram(name, f.help, f.labels, buckets=f.buckets, registry=registry)
        return Counter(name, f.help, f.labels, registry=registry)

    requests = metric("crossroads_requests")
    duration = metric("crossroads_request_duration_seconds")
    ttft = metric("crossroads_time_to_first_token_seconds")
    routing = metric("crossroads_routing_duration_seconds")
    upstream = metric("crossroads_upstream_duration_seconds")
    tokens = metric("crossroads_tokens")
    cost = metric("crossroads_cost_usd")
    signals = metric("crossroads_signal_duration_seconds")
    assert len(ENTRY) == 4
    children: dict[Any, Any] = {}

    def child(family: Any, *labels: Any) -> Any:
        if not cached:
            return family.labels(*labels)
        key = (id(family), labels)
        found = children.get(key)
        if found is None:
            found = children[key] = family.labels(*labels)
        return found

    def count(trace: Any) -> None:
        route, usage, caller = trace.route, trace.usage, trace.caller
        where = (trace.requested_model, route.decision, trace.model, trace.upstream)
        child(requests, *where, trace.format, str(trace.status)).inc()
        child(duration, *where, STATUS_CLASS[trace.status // 100]).observe(trace.latency_ms / 1000)
        child(ttft, *where, STREAM[trace.stream]).observe(trace.ttft_ms / 1000)
        child(routing, where[0], where[1]).observe(route.routing_ms / 1000)
        for attempt in trace.attempts:
            child(upstream, attempt.model, attempt.upstream, attempt.outcome).observe(
                attempt.latency_ms / 1000
            )
        who = (trace.model, caller.key_name or "", caller.team or "")
        child(tokens, *who, "prompt").inc(usage.prompt_tokens)
        child(tokens, *who, "completion").inc(usage.completion_tokens)
        child(cost, *who).inc(trace.cost)
        for result in route.signals.values():
            child(signals, result.name).observe(result.elapsed_ms / 1000)

    return count


def _child(variant: str, n: int) -> None:
    if variant.startswith("prometheus-multiprocess"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
    traces = asyncio.run(_traces(n))
    finish: Any = None
    if variant == "nothing":
        count: Any = lambda trace: None  # noqa: E731
    elif variant == "crossroads":
        from crossroads.observe.metrics import RequestMetrics

        metrics = RequestMetrics(frozenset({"auto", "small", "big"}))
        count, finish = metrics.observe, metrics.fold
    else:
        count = _prometheus(cached=variant.endswith("cached"))
    for trace in traces:  # warm: series made, code specialised
        count(trace)
    if finish is not None:
        finish()
    _toggle(os.getpid(), True)
    for _ in range(PASSES):
        for trace in traces:
            count(trace)
    if finish is not None:
        finish()
    _toggle(os.getpid(), False)


def measure(variant: str, n: int) -> float:
    """Instructions per trace of ``variant`` (the loop around it included)."""
    cmd = [sys.executable, "-m", "bench.metrics_cost", "--child", variant, "--traces", str(n)]
    child = _callgrind(cmd, cwd=os.getcwd())
    _, err = child.communicate(timeout=1800)
    if child.returncode != 0:
        raise SystemExit(err.decode()[-2000:])
    return _collected(err) / (n * PASSES)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost")
    parser.add_argument("--traces", type=int, default=512)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child, args.traces)
        return
    floor = measure("nothing", args.traces)
    for variant in VARIANTS[1:]:
        n = measure(variant, args.traces) - floor
        print(f"{variant}: {n:,.0f} instructions per request")


if __name__ == "__main__":
    main()
