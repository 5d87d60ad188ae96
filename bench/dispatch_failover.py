"""Time to detect and route around a dead endpoint (``python -m bench.dispatch failover``).

One model on three endpoints (fake upstreams A, B, C; ``bench/configs/dispatch-three.yaml``:
connect timeout 1 s, first byte 2 s, breaker at the documented defaults). An open-loop
load runs; at t0 = ``--fail-at`` endpoint A fails (``kill``: SIGKILL of its process, so
connections are refused; or any fake upstream fault switched on with ``/_control``, e.g.
``hang`` or ``503``); ``--heal-after`` seconds later it recovers (restarted on the same
port, or the fault cleared). Every 20 ms the runner polls the gateway's
``GET /v1/crossroads/endpoints`` and every upstream's ``/_stats``, so the report shows:

- client-visible errors (expected 0);
- failed attempts on A and requests A received between t0 and its breaker opening;
- when the breaker opened (exact: poll time + ``retry_after_s`` − ``open_s``) and when A
  received its last request;
- the latency of requests sent in the first second after t0 (and the first 3 s) against
  the steady state before t0;
- after the heal: when A received traffic again and when its breaker closed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

import orjson

from bench.dispatch import Upstreams, completions, gateway_service, get_json, post_json
from bench.loadgen import percentile
from bench.procs import OUT, ROOT, pinned, run_loadgen

OPEN_S = 10.0  # dispatch-three.yaml: dispatch.breaker.open_s
KEY = "a/fake-small"  # the failing endpoint, as the gateway names it
POLL_S = 0.02


def run_failover(args: argparse.Namespace) -> dict[str, Any]:
    """Every scenario of ``--faults``, ``--failover-repeats`` times; their summaries."""
    results = []
    for repeat in range(args.failover_repeats):
        for fault in [f for f in args.faults.split(",") if f]:
            print(f"failover {fault} (repeat {repeat + 1})", flush=True)
            result = run_scenario(fault, args)
            results.append(result)
            print("  " + orjson.dumps(_headline(result)).decode(), flush=True)
    return {"rate": args.rate, "stream": args.stream, "scenarios": results}


def run_scenario(fault: str, args: argparse.Namespace) -> dict[str, Any]:
    """One fault on endpoint A under load; the measured timeline and summary."""
    duration = args.fail_at + args.heal_after + args.tail
    ups = Upstreams.start(args.cpu_aux, duration + 180)
    gateway = gateway_service("dispatch-three", ups, args.cpu_sut)
    dump = OUT / f"dispatch-failover-{fault}-samples.json"
    polls: list[dict[str, Any]] = []
    loadgen: subprocess.Popen[bytes] | None = None
    try:
        gateway.start(timeout=120)
        url = gateway.url + "/chat/completions"
        run_loadgen(["--url", url, "--model", "auto", "--duration", "1"], args.cpu_aux, 60)
        load = ["--url", url, "--model", "auto", "--mode", "open", "--rate", str(args.rate)]
        load += ["--duration", str(duration), "--warmup", "0", "--timeout", "10"]
        load += ["--dump", str(dump), *(["--stream"] if args.stream else [])]
        loadgen = subprocess.Popen(
            pinned([sys.executable, "-m", "bench.loadgen", *load], args.cpu_aux),
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        start = time.time()
        fail_time = heal_time = 0.0
        count_at_t0: int | None = None
        while loadgen.poll() is None and time.time() - start < duration + 30:
            now = time.time() - start
            if not fail_time and now >= args.fail_at:
                fail_time = time.time()
                count_at_t0 = _break(ups, fault)
            if fail_time and not heal_time and now >= args.fail_at + args.heal_after:
                heal_time = time.time()
                _heal(ups, fault)
            polls.append(_poll(gateway.url.removesuffix("/v1"), ups, time.time() - start))
            time.sleep(POLL_S)
        out, _ = loadgen.communicate(timeout=60)
        summary = orjson.loads(out.splitlines()[-1])
    finally:
        if loadgen is not None and loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait(5)
        gateway.stop()
        ups.stop()
    samples = orjson.loads(dump.read_bytes())
    offset = samples["start_unix"] - start  # loadgen's time 0 on our clock
    rows = [[s[0] + offset, *s[1:]] for s in samples["samples"]]
    t0, heal = fail_time - start, heal_time - start
    return analyse(fault, summary, rows, polls, t0, heal, count_at_t0, args)


def _break(ups: Upstreams, fault: str) -> int | None:
    """Make A fail; the requests A had received at that moment (None for a kill)."""
    if fault == "kill":
        proc = ups.services["a"].proc
        assert proc is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        return None
    snapshot = post_json(ups.root("a") + "/_control", {"fault": fault})
    return int(snapshot["counts"].get("POST /v1/chat/completions", 0))


def _heal(ups: Upstreams, fault: str) -> None:
    if fault == "kill":
        ups.restart("a")
    else:
        post_json(ups.root("a") + "/_control", {"fault": None})


def _poll(gateway: str, ups: Upstreams, t: float) -> dict[str, Any]:
    listing = get_json(gateway + "/v1/crossroads/endpoints") or {"data": []}
    state = next((e for e in listing["data"] if e["endpoint"] == KEY), None)
    return {"t": round(t, 4), "a": state, "counts": {"a": completions(ups.root("a"))}}


def _window(rows: list[list[Any]], start: float, end: float) -> dict[str, Any]:
    """Requests *sent* in [start, end): count, errors, latency from send to end."""
    inside = [r for r in rows if start <= r[0] < end]
    ok = sorted(r[3] - r[1] for r in inside if r[5])
    return {
        "requests": len(inside),
        "errors": sum(1 for r in inside if not r[5]),
        "p50_ms": round(percentile(ok, 0.50) * 1000, 2),
        "p90_ms": round(percentile(ok, 0.90) * 1000, 2),
        "p99_ms": round(percentile(ok, 0.99) * 1000, 2),
        "max_ms": round(ok[-1] * 1000, 1) if ok else 0.0,
        "over_100ms": sum(1 for v in ok if v > 0.1),
    }


def analyse(
    fault: str,
    summary: dict[str, Any],
    rows: list[list[Any]],
    polls: list[dict[str, Any]],
    t0: float,
    heal: float,
    count_at_t0: int | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The scenario's numbers, from the client samples and the polled timelines."""
    seen = [p for p in polls if p["a"] is not None]
    before = [p for p in seen if p["t"] < t0]
    failed0 = before[-1]["a"]["failed"] if before else 0
    # Breaker opening: the first poll after t0 that shows it open; its exact time from
    # retry_after_s (the breaker counts down open_s from the moment it opened).
    opened = next((p for p in seen if t0 <= p["t"] < heal and p["a"]["state"] == "open"), None)
    opened_at = opened["t"] + opened["a"]["retry_after_s"] - OPEN_S if opened else None
    # Requests that reached A after t0 (faults the process survives: its own counter).
    counts = [(p["t"], p["counts"]["a"]) for p in polls if p["counts"]["a"] is not None]
    at_t0 = count_at_t0 if count_at_t0 is not None else 0
    during = [(t, c) for t, c in counts if t0 <= t < heal]
    last_arrival = None
    for (t, c), (_, prev) in zip(during[1:], during, strict=False):
        if c > prev:
            last_arrival = t
    if during and during[0][1] > at_t0 and last_arrival is None:
        last_arrival = during[0][0]
    closed = next((p for p in seen if p["t"] >= heal and p["a"]["state"] == "closed"), None)
    after = [(t, c) for t, c in counts if t >= heal]
    back = next((t for (t, c), (_, prev) in zip(after[1:], after, strict=False) if c > prev), None)
    last_state = seen[-1]["a"] if seen else {}

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t, 3)

    return {
        "fault": fault,
        "rate": args.rate,
        "stream": args.stream,
        "t0_s": round(t0, 3),
        "heal_s": round(heal, 3),
        "requests": summary["requests"],
        "client_errors": summary["errors"],
        "error_kinds": summary["error_kinds"],
        "failed_attempts_on_a_until_open": (opened["a"]["failed"] - failed0 if opened else None),
        "failed_attempts_on_a_until_heal": (
            max((p["a"]["failed"] for p in seen if p["t"] < heal), default=failed0) - failed0
        ),
        "requests_reaching_a_t0_to_heal": (during[-1][1] - at_t0) if during else None,
        "breaker_open_after_s": rel(None if opened_at is None else opened_at - t0),
        "breaker_reason": opened["a"]["reason"] if opened else None,
        "last_request_to_a_after_s": rel(None if last_arrival is None else last_arrival - t0),
        "traffic_back_after_heal_s": rel(None if back is None else back - heal),
        "breaker_closed_after_heal_s": rel(None if closed is None else closed["t"] - heal),
        "final_state": {k: last_state.get(k) for k in ("state", "served", "failed")},
        "windows": {
            "steady (1 s → t0)": _window(rows, 1.0, t0),
            "first second after t0": _window(rows, t0, t0 + 1),
            "t0 → t0+3 s": _window(rows, t0, t0 + 3),
            "t0 → heal": _window(rows, t0, heal),
            "heal → end": _window(rows, heal, heal + args.tail),
        },
        "timeline": [
            [
                p["t"],
                p["counts"]["a"],
                *(p["a"][k] for k in ("state", "in_flight", "served", "failed")),
            ]
            for p in seen
        ],
    }


def _headline(r: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "client_errors",
        "failed_attempts_on_a_until_open",
        "requests_reaching_a_t0_to_heal",
        "breaker_open_after_s",
        "last_request_to_a_after_s",
        "traffic_back_after_heal_s",
        "breaker_closed_after_heal_s",
    )
    return {"fault": r["fault"], **{k: r[k] for k in keys}}


def _fmt(value: Any) -> str:
    return "–" if value is None else str(value)


def render_failover(data: dict[str, Any]) -> str:
    """Markdown: one row per scenario, then the latency windows of each."""
    mode = "streams" if data["stream"] else "requests"
    lines = [
        f"Open loop, {data['rate']:g} {mode}/s; endpoint A fails at t0.",
        "",
        "| fault | requests | client errors | failed attempts on A until open | requests "
        "reaching A t0→heal | breaker open after t0 s | last request to A after t0 s "
        "| traffic back after heal s | breaker closed after heal s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["scenarios"]:
        lines.append(
            f"| {r['fault']} | {r['requests']} | {r['client_errors']} "
            f"| {_fmt(r['failed_attempts_on_a_until_open'])} "
            f"| {_fmt(r['requests_reaching_a_t0_to_heal'])} "
            f"| {_fmt(r['breaker_open_after_s'])} | {_fmt(r['last_request_to_a_after_s'])} "
            f"| {_fmt(r['traffic_back_after_heal_s'])} "
            f"| {_fmt(r['breaker_closed_after_heal_s'])} |"
        )
    lines += [
        "",
        "| fault | window (by send time) | requests | errors | p50 ms | p90 ms | p99 ms "
        "| max ms | > 100 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["scenarios"]:
        for name, w in r["windows"].items():
            lines.append(
                f"| {r['fault']} | {name} | {w['requests']} | {w['errors']} | {w['p50_ms']} "
                f"| {w['p90_ms']} | {w['p99_ms']} | {w['max_ms']} | {w['over_100ms']} |"
            )
    return "\n".join(lines)
