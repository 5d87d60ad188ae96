"""``python -m bench``: gateway overhead vs direct and vs LiteLLM, in one run, same load.

One fake upstream (its own process) serves every target. Targets: ``direct`` (the load
generator talks to the upstream), ``crossroads`` (``crossroads serve`` with a bench
config), ``litellm`` (the LiteLLM proxy in ``bench/.venv-litellm``) and ``tensorzero``
(TensorZero's Rust gateway, embedded in its PyPI wheel, in ``bench/.venv-tensorzero``;
observability off, one process whatever ``--workers`` says). Each repeat runs
every target under the same loads, in a rotated order; the report gives medians and
spread over repeats, and latency *added* over ``direct`` measured in the same repeat.

Cores: the server under test is pinned to ``--cpu-sut``; the upstream and the load
generator share ``--cpu-aux``.

    python -m bench --repeats 3 --duration 5 --rates 50,200,500
    python -m bench --targets direct,litellm --repeats 1 --duration 3   # quick check
    python -m bench --targets direct,crossroads,tensorzero --crossroads-configs crossroads-passthrough
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.procs import (
    OUT,
    ROOT,
    Service,
    cpu_seconds,
    rss_mb,
    run_loadgen,
    settle,
    start_fake_upstream,
)
from bench.report import render_report
from bench.targets import (
    TENSORZERO_MODEL,
    crossroads_service,
    litellm_service,
    litellm_version,
    tensorzero_service,
    tensorzero_version,
)

Load = tuple[str, list[str]]


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default="direct,crossroads,litellm")
    parser.add_argument(
        "--crossroads-configs",
        default="crossroads-heuristic",
        help="bench/configs/<name>.yaml, comma-separated",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per load")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16, help="closed-loop concurrency")
    parser.add_argument("--rates", default="50,200,500", help="open-loop rates, req/s")
    parser.add_argument("--stream-rates", default="200", help="open-loop stream rates")
    parser.add_argument("--no-closed", action="store_true", help="skip the closed-loop loads")
    parser.add_argument("--chunks", type=int, default=8, help="content chunks per stream")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per gateway")
    parser.add_argument("--cpu-sut", default="1", help="cores of the server under test")
    parser.add_argument("--cpu-aux", default="0", help="cores of the upstream and load generator")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout")
    return parser.parse_args(argv)


def plan_loads(args: argparse.Namespace) -> list[Load]:
    """The loads every target gets, in order."""
    common = [
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--timeout",
        str(args.timeout),
    ]
    loads: list[Load] = []
    if not args.no_closed:
        closed = ["--mode", "closed", "--connections", str(args.connections)]
        loads += [("closed", closed + common), ("closed-stream", [*closed, "--stream", *common])]
    for rate in filter(None, args.rates.split(",")):
        loads.append((f"open-{rate}", ["--mode", "open", "--rate", rate, *common]))
    for rate in filter(None, args.stream_rates.split(",")):
        loads.append(
            (f"open-stream-{rate}", ["--mode", "open", "--rate", rate, "--stream", *common])
        )
    return loads


def make_target(
    name: str, upstream: Service, args: argparse.Namespace
) -> tuple[Service | None, list[str]]:
    """The service for target ``name`` (``None`` for direct) and its loadgen arguments."""
    if name == "direct":
        return None, ["--model", "fake-small"]
    if name.startswith("crossroads"):
        config = name.split(":", 1)[1]
        service = crossroads_service(config, upstream.url, args.cpu_sut, args.workers)
        return service, ["--model", "auto"]
    if name == "litellm":
        key = "sk-bench-" + secrets.token_hex(16)
        service = litellm_service(upstream.url, args.cpu_sut, key, args.workers)
        return service, ["--model", "fake-small", "--api-key", key]
    if name == "tensorzero":
        service = tensorzero_service(upstream.url, args.cpu_sut)
        return service, ["--model", TENSORZERO_MODEL.format("fake-small")]
    raise SystemExit(f"unknown target {name!r}: use direct, crossroads, litellm or tensorzero")


def run_target(
    name: str, upstream: Service, loads: list[Load], args: argparse.Namespace
) -> dict[str, Any]:
    """Start one target, run every load against it, stop it; results by load name."""
    service, target_args = make_target(name, upstream, args)
    result: dict[str, Any] = {"loads": {}}
    try:
        if service is not None:
            service.start(timeout=120)
            time.sleep(0.5)
            result["rss_idle_mb"] = rss_mb(service.pid)
        url = (service or upstream).url + "/chat/completions"
        # Warm the target (imports, connection pools, JIT-like caches) outside the window.
        run_loadgen(
            ["--url", url, *target_args, "--duration", "1", "--warmup", "0"], args.cpu_aux, 60
        )
        server = service or upstream
        for load_name, load_args in loads:
            cpu0, up0 = cpu_seconds(server.pid), cpu_seconds(upstream.pid)
            summary = run_loadgen(
                ["--url", url, *target_args, *load_args],
                args.cpu_aux,
                timeout=args.duration + args.warmup + args.timeout + 60,
            )
            result["loads"][load_name] = summary
            sent = max(1, summary["sent_total"])
            summary["server_cpu_us_per_req"] = round(
                (cpu_seconds(server.pid) - cpu0) / sent * 1e6, 1
            )
            summary["upstream_cpu_us_per_req"] = round(
                (cpu_seconds(upstream.pid) - up0) / sent * 1e6, 1
            )
            summary["settle_s"] = round(settle(url, *_model_and_key(target_args)), 2)
            if service is not None:
                result["rss_loaded_mb"] = max(result.get("rss_loaded_mb", 0), rss_mb(service.pid))
            print(f"  {name:28s} {load_name:18s} {_line(summary)}", flush=True)
    except Exception as exc:  # one target failing must not lose the others' numbers
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"  {name}: FAILED {result['error'][:300]}", flush=True)
    finally:
        if service is not None:
            service.stop()
    return result


def _model_and_key(target_args: list[str]) -> tuple[str, str]:
    options = dict(zip(target_args[::2], target_args[1::2], strict=True))
    return options["--model"], options.get("--api-key", "bench")


def _line(summary: dict[str, Any]) -> str:
    lat = summary["latency_ms"]
    return (
        f"{summary['throughput']:>8.1f}/s  p50 {lat['p50']:7.2f}  p90 {lat['p90']:7.2f}  "
        f"p99 {lat['p99']:7.2f} ms  errors {summary['errors']}  lg-cpu {summary['loadgen_cpu']:.2f}"
        f"  cpu/req {summary.get('server_cpu_us_per_req', 0):.0f} us"
    )


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    """What the numbers were measured on, and what else was running."""
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "cpu_sut": args.cpu_sut,
        "cpu_aux": args.cpu_aux,
        "argv": sys.argv,
    }
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = [line for line in lines if line.startswith("model name")]
        info["cpu_model"] = model[0].split(":", 1)[1].strip() if model else "?"
    versions = {}
    for package in ("uvicorn", "uvloop", "httptools", "aiohttp", "orjson", "crossroads"):
        with contextlib.suppress(Exception):
            import importlib.metadata as metadata

            versions[package] = metadata.version(package)
    info["versions"] = versions
    info["git"] = git_state()
    return info


def git_state() -> dict[str, Any]:
    """The commit measured, and which package files differed from it (a shared checkout
    may hold someone's work in progress)."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n")

    dirty = [line[3:] for line in git("status", "--porcelain", "crossroads").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "dirty": dirty}


def main(argv: list[str] | None = None) -> None:
    """Run the whole benchmark; write JSON and a markdown report under ``bench/out``."""
    args = _args(argv)
    targets = []
    for name in filter(None, args.targets.split(",")):
        if name == "crossroads":
            targets += [f"crossroads:{c}" for c in args.crossroads_configs.split(",") if c]
        else:
            targets.append(name)
    loads = plan_loads(args)
    info = machine_info(args)
    if "litellm" in targets:
        info["versions"]["litellm"] = litellm_version()
    if "tensorzero" in targets:
        info["versions"]["tensorzero"] = tensorzero_version()
    per_target = args.duration + args.warmup + 2
    lifetime = args.repeats * len(targets) * (len(loads) * (per_target + args.timeout) + 120) + 300
    upstream = start_fake_upstream(args.cpu_aux, args.chunks, lifetime)
    runs: list[dict[str, Any]] = []
    try:
        for repeat in range(args.repeats):
            order = targets[repeat % len(targets) :] + targets[: repeat % len(targets)]
            print(f"repeat {repeat + 1}/{args.repeats}: {', '.join(order)}", flush=True)
            runs.append({name: run_target(name, upstream, loads, args) for name in order})
    finally:
        upstream.stop()
    info["loadavg_end"] = os.getloadavg()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    OUT.mkdir(parents=True, exist_ok=True)
    data = {"machine": info, "targets": targets, "loads": [n for n, _ in loads], "runs": runs}
    (OUT / f"run-{stamp}.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    report = render_report(data)
    (OUT / f"report-{stamp}.md").write_text(report)
    print(report)
    print(f"wrote bench/out/run-{stamp}.json and bench/out/report-{stamp}.md")


if __name__ == "__main__":
    main()
