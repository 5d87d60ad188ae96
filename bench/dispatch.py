"""``python -m bench.dispatch``: what the dispatch machinery costs when nothing fails, and how
fast it routes around a dead endpoint (issue 5).

``overhead``: three fake upstreams (A, B, C, each its own process) and, in one run under the
same loads, the targets ``direct`` (load generator → A), ``single`` (crossroads, the model
on A only: ``bench/configs/dispatch-single.yaml``) and ``least_loaded``,
``prefix_affinity``, ``latency`` (crossroads, the model on A, B and C with that balancing:
``bench/configs/dispatch-three.yaml``), and ``least_loaded_on_a`` (the same three
endpoints all pointing at A: the gateway's machinery without the cost of waking three
upstream processes on the shared core). Each repeat runs every target in a rotated order;
the report gives medians with [min–max] over repeats, latency added over ``direct`` in the
same repeat, server CPU µs per request, and how the requests were shared among A, B, C.

``failover``: see :mod:`bench.dispatch_failover`.

Cores: the gateway runs alone on ``--cpu-sut``; the upstreams and the load generator share
``--cpu-aux``.

    python -m bench.dispatch overhead --repeats 3 --duration 5
    python -m bench.dispatch failover --faults kill,hang,503 --rate 200
    python -m bench.dispatch all     # both, one JSON + markdown report in bench/out
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.__main__ import git_state
from bench.procs import (
    OUT,
    ROOT,
    Service,
    cpu_seconds,
    free_port,
    pinned,
    run_loadgen,
    settle,
)
from bench.report import _median, _spread
from bench.targets import crossroads_service

MODEL = "fake-small"
UPSTREAMS = ("a", "b", "c")
TARGETS = ("direct", "single", "least_loaded", "prefix_affinity", "latency", "least_loaded_on_a")


# ---------------------------------------------------------------------------- processes


def start_upstream(name: str, port: int, cpus: str | None, lifetime: float) -> Service:
    """A fake upstream process on ``port`` (fixed, so a killed one can come back on it)."""
    cmd = pinned(
        [
            sys.executable,
            "-m",
            "tests.support.fake_upstream",
            "--port",
            str(port),
            "--models",
            MODEL,
            "--chunks",
            "8",
            "--lifetime",
            str(lifetime),
            "--name",
            name,
        ],
        cpus,
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"fake upstream {name} did not start on port {port}: {line!r}")
    base = line.split()[1]
    return Service(f"upstream-{name}", cmd, base, base.removesuffix("/v1") + "/health", proc=proc)


@dataclass
class Upstreams:
    """The three fake upstreams, by name, with their fixed ports."""

    cpus: str | None
    lifetime: float
    ports: dict[str, int]
    services: dict[str, Service]

    @classmethod
    def start(cls, cpus: str | None, lifetime: float) -> Upstreams:
        """Start A, B and C on free ports (stopping the ones started if one fails)."""
        ups = cls(cpus, lifetime, {}, {})
        try:
            for name in UPSTREAMS:
                ups.ports[name] = free_port()
                ups.services[name] = start_upstream(name, ups.ports[name], cpus, lifetime)
        except BaseException:
            ups.stop()
            raise
        return ups

    def url(self, name: str) -> str:
        """The OpenAI base URL of upstream ``name``."""
        return f"http://127.0.0.1:{self.ports[name]}/v1"

    def root(self, name: str) -> str:
        """``http://127.0.0.1:PORT`` of upstream ``name`` (``/_control``, ``/_stats``)."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def restart(self, name: str) -> None:
        """Start ``name`` again on its port (after a kill)."""
        self.services[name] = start_upstream(name, self.ports[name], self.cpus, self.lifetime)

    def counts(self) -> dict[str, int | None]:
        """Chat completions each upstream has received (None: not answering)."""
        return {name: completions(self.root(name)) for name in UPSTREAMS}

    def reset_stats(self) -> None:
        """Zero every upstream's counters."""
        for name in UPSTREAMS:
            with contextlib.suppress(OSError):
                post_json(self.root(name) + "/_control", {"reset_stats": True})

    def stop(self) -> None:
        """Stop every upstream process."""
        for service in self.services.values():
            service.stop()


def post_json(url: str, data: dict[str, Any], timeout: float = 5) -> Any:
    """POST ``data`` as JSON; the decoded answer."""
    request = urllib.request.Request(
        url, data=orjson.dumps(data), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return orjson.loads(response.read())


def get_json(url: str, timeout: float = 1) -> Any:
    """GET ``url``; the decoded JSON, or None when it does not answer."""
    with (
        contextlib.suppress(OSError, ValueError),
        urllib.request.urlopen(url, timeout=timeout) as r,
    ):
        return orjson.loads(r.read())
    return None


def completions(root: str) -> int | None:
    """``POST /v1/chat/completions`` requests an upstream has received, from its ``/_stats``."""
    stats = get_json(root + "/_stats")
    if stats is None:
        return None
    return int(stats["counts"].get("POST /v1/chat/completions", 0))


def gateway_service(
    config: str,
    ups: Upstreams,
    cpus: str | None,
    balancing: str = "least_loaded",
    on_a: bool = False,
) -> Service:
    """``crossroads serve`` with ``bench/configs/<config>.yaml`` wired to A, B, C (or, with
    ``on_a``, every endpoint to A)."""
    service = crossroads_service(config, ups.url("a"), cpus)
    service.name = f"crossroads-{config}-{balancing}"
    service.env.update(
        {
            "FAKE_UPSTREAM_B": ups.url("a" if on_a else "b"),
            "FAKE_UPSTREAM_C": ups.url("a" if on_a else "c"),
            "DISPATCH_BALANCING": balancing,
        }
    )
    return service


# ---------------------------------------------------------------------------- overhead


def plan_loads(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The loads every target gets, in order: closed loop, then the open-loop rates."""
    common = ["--duration", str(args.duration), "--warmup", str(args.warmup), "--timeout", "10"]
    loads = []
    if args.connections:
        loads.append(("closed", ["--mode", "closed", "--connections", str(args.connections)]))
    loads += [(f"open-{r}", ["--mode", "open", "--rate", r]) for r in args.rates.split(",") if r]
    loads += [
        (f"open-stream-{r}", ["--mode", "open", "--rate", r, "--stream"])
        for r in args.stream_rates.split(",")
        if r
    ]
    return [(name, spec + common) for name, spec in loads]


def run_target(
    target: str, ups: Upstreams, loads: list[tuple[str, list[str]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Start one target, run every load on it, stop it; summaries by load name."""
    service = None
    if target == "single":
        service = gateway_service("dispatch-single", ups, args.cpu_sut)
    elif target == "least_loaded_on_a":
        service = gateway_service("dispatch-three", ups, args.cpu_sut, on_a=True)
    elif target != "direct":
        service = gateway_service("dispatch-three", ups, args.cpu_sut, balancing=target)
    result: dict[str, Any] = {"loads": {}}
    try:
        if service is not None:
            service.start(timeout=120)
        url = (service.url if service else ups.url("a")) + "/chat/completions"
        server_pid = service.pid if service else ups.services["a"].pid
        model = ["--model", "auto" if service else MODEL]
        run_loadgen(["--url", url, *model, "--duration", "1", "--warmup", "0"], args.cpu_aux, 60)
        for name, load in loads:
            ups.reset_stats()
            cpu0 = cpu_seconds(server_pid)
            up0 = sum(cpu_seconds(s.pid) for s in ups.services.values())
            summary = run_loadgen(
                ["--url", url, *model, *load],
                args.cpu_aux,
                timeout=args.duration + args.warmup + 80,
            )
            sent = max(1, summary["sent_total"])
            summary["server_cpu_us_per_req"] = round((cpu_seconds(server_pid) - cpu0) / sent * 1e6)
            up_cpu = sum(cpu_seconds(s.pid) for s in ups.services.values()) - up0
            summary["upstreams_cpu_us_per_req"] = round(up_cpu / sent * 1e6)
            counts = ups.counts()
            summary["upstream_counts"] = counts
            summary["settle_s"] = round(settle(url, model[1], "bench"), 2)
            result["loads"][name] = summary
            print(f"  {target:16s} {name:16s} {_line(summary)}", flush=True)
    except Exception as exc:  # one target failing must not lose the others' numbers
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"  {target}: FAILED {result['error'][:300]}", flush=True)
    finally:
        if service is not None:
            service.stop()
    return result


def _line(s: dict[str, Any]) -> str:
    lat = s["latency_ms"]
    counts = "/".join(str(c) for c in s["upstream_counts"].values())
    return (
        f"{s['throughput']:>8.1f}/s p50 {lat['p50']:6.2f} p90 {lat['p90']:6.2f} "
        f"p99 {lat['p99']:7.2f} ms err {s['errors']} cpu/req {s['server_cpu_us_per_req']} us "
        f"A/B/C {counts}"
    )


def run_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Every target under every load, ``--repeats`` times; the raw summaries."""
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets {sorted(unknown)}: use {', '.join(TARGETS)}")
    loads = plan_loads(args)
    per_load = args.duration + args.warmup + 15
    lifetime = args.repeats * len(targets) * (len(loads) * per_load + 60) + 300
    ups = Upstreams.start(args.cpu_aux, lifetime)
    runs = []
    try:
        for repeat in range(args.repeats):
            order = targets[repeat % len(targets) :] + targets[: repeat % len(targets)]
            print(f"overhead repeat {repeat + 1}/{args.repeats}: {', '.join(order)}", flush=True)
            runs.append({t: run_target(t, ups, loads, args) for t in order})
    finally:
        ups.stop()
    return {"targets": targets, "loads": [n for n, _ in loads], "runs": runs}


def _values(data: dict[str, Any], target: str, load: str, pick: Any) -> list[float]:
    out = []
    for run in data["runs"]:
        summary = run.get(target, {}).get("loads", {}).get(load)
        if summary and summary["ok"]:
            out.append(pick(summary))
    return out


def _added(data: dict[str, Any], target: str, load: str, metric: str, q: str) -> list[float]:
    out = []
    for run in data["runs"]:
        mine = run.get(target, {}).get("loads", {}).get(load)
        base = run.get("direct", {}).get("loads", {}).get(load)
        if mine and base and mine["ok"] and base["ok"]:
            out.append(mine[metric][q] - base[metric][q])
    return out


def _shares(data: dict[str, Any], target: str, load: str) -> str:
    """Median share of requests per upstream, e.g. ``34/33/33``."""
    shares: dict[str, list[float]] = {name: [] for name in UPSTREAMS}
    for run in data["runs"]:
        summary = run.get(target, {}).get("loads", {}).get(load)
        counts = (summary or {}).get("upstream_counts") or {}
        total = sum(c or 0 for c in counts.values())
        if total:
            for name in UPSTREAMS:
                shares[name].append(100 * (counts.get(name) or 0) / total)
    if not shares["a"]:
        return "–"
    return "/".join(f"{_median(v):.0f}" for v in shares.values())


def render_overhead(data: dict[str, Any]) -> str:
    """Markdown tables: one row per load and target."""
    lines = [
        "| load | target | req/s | p50 ms | added p50 ms | added p90 ms | added p99 ms "
        "| server CPU µs/req | errors | % to A/B/C |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load in data["loads"]:
        metric = "ttfb_ms" if "stream" in load else "latency_ms"
        for target in data["targets"]:
            thr = _values(data, target, load, lambda s: s["throughput"])
            p50 = _values(data, target, load, lambda s, m=metric: s[m]["p50"])
            cpu = _values(data, target, load, lambda s: s["server_cpu_us_per_req"])
            errors = _values(data, target, load, lambda s: s["errors"])
            added = [
                "–" if target == "direct" else _spread(_added(data, target, load, metric, q))
                for q in ("p50", "p90", "p99")
            ]
            lines.append(
                f"| {load}{' (TTFB)' if 'stream' in load else ''} | {target} "
                f"| {_spread(thr, '{:.0f}')} | {_spread(p50)} | {' | '.join(added)} "
                f"| {_spread(cpu, '{:.0f}')} | {int(sum(errors))} | {_shares(data, target, load)} |"
            )
    return "\n".join(lines)


def selection_cost_us(repeat: int = 5, number: int = 20000) -> dict[str, float]:
    """In process: µs per request of the dispatcher's own bookkeeping (breaker check,
    ``choose``, acquire, in-flight and TTFT updates, success), by policy and endpoint count."""
    import timeit

    from crossroads.config import BreakerConfig
    from crossroads.dispatch.balancing import choose
    from crossroads.dispatch.breaker import CircuitBreaker
    from crossroads.dispatch.endpoints import EndpointState

    class _Upstream:
        def __init__(self, name: str) -> None:
            self.name = name

    out = {}
    for n in (1, 3):
        endpoints = [
            EndpointState(
                MODEL, _Upstream(f"u{i}"), MODEL, 1.0, None, CircuitBreaker(BreakerConfig())
            )  # type: ignore[arg-type]
            for i in range(n)
        ]
        for policy in ("least_loaded", "prefix_affinity", "latency"):

            def one(endpoints: list[EndpointState] = endpoints, policy: str = policy) -> None:
                ready = [e for e in endpoints if e.breaker.available()]
                e = choose(policy, ready, "Write one short sentence about routers.", 2000.0)
                e.breaker.acquire()
                e.in_flight += 1
                e.observe_ttft(1.0)
                e.in_flight -= 1
                e.breaker.success()

            best = min(timeit.repeat(one, number=number, repeat=repeat)) / number
            out[f"{policy}, {n} endpoint{'s' if n > 1 else ''}"] = round(best * 1e6, 2)
    return out


# ---------------------------------------------------------------------------- CLI


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__)
    parser.add_argument("what", choices=["overhead", "failover", "all"], nargs="?", default="all")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per load")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16, help="closed loop; 0: skip it")
    parser.add_argument("--rates", default="500", help="open-loop rates, req/s")
    parser.add_argument("--stream-rates", default="200", help="open-loop stream rates")
    parser.add_argument("--faults", default="kill,hang,503", help="failover scenarios")
    parser.add_argument("--rate", type=float, default=200.0, help="failover load, req/s")
    parser.add_argument("--fail-at", type=float, default=4.0, help="failover: t0, s into the load")
    parser.add_argument("--heal-after", type=float, default=6.0, help="failover: s after t0")
    parser.add_argument("--tail", type=float, default=14.0, help="failover: s of load after heal")
    parser.add_argument("--failover-repeats", type=int, default=1)
    parser.add_argument("--stream", action="store_true", help="failover load streams")
    parser.add_argument("--cpu-sut", default="1", help="cores of the gateway")
    parser.add_argument("--cpu-aux", default="0", help="cores of upstreams and load generator")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the chosen parts; write ``bench/out/dispatch-*.json`` and ``.md``."""
    from bench.dispatch_failover import render_failover, run_failover

    args = _args(argv)
    data: dict[str, Any] = {
        "machine": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpus": os.cpu_count(),
            "cpu_sut": args.cpu_sut,
            "cpu_aux": args.cpu_aux,
            "loadavg_start": os.getloadavg(),
            "argv": sys.argv,
            "git": git_state(),
        }
    }
    if args.what in ("overhead", "all"):
        data["selection_cost_us"] = selection_cost_us()
        data["overhead"] = run_overhead(args)
    if args.what in ("failover", "all"):
        data["failover"] = run_failover(args)
    data["machine"]["loadavg_end"] = os.getloadavg()
    parts = [f"machine: {data['machine']}"]
    if "selection_cost_us" in data:
        parts.append(f"dispatcher bookkeeping, µs/request in process: {data['selection_cost_us']}")
    if "overhead" in data:
        parts.append(render_overhead(data["overhead"]))
    if "failover" in data:
        parts.append(render_failover(data["failover"]))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    OUT.mkdir(parents=True, exist_ok=True)
    json_path = OUT / f"dispatch-{stamp}.json"
    json_path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    report = "\n\n".join(parts) + "\n"
    Path(OUT / f"dispatch-{stamp}.md").write_text(report)
    print(report)
    print(f"wrote {json_path.relative_to(ROOT)} and its .md")


if __name__ == "__main__":
    main()
