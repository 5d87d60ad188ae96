"""Time to detect and route around a failing endpoint, and what clients see meanwhile.

    python -m bench.failover --fault refuse --rate 200 [--stream]

Two fake upstreams (A, B) serve one model as two endpoints of crossroads. An open-loop
load runs; after ``--fail-at`` seconds endpoint A starts failing (``--fault``: any fake
upstream fault, or ``kill`` to stop the process so connections are refused), and is
healed after ``--heal-at`` seconds. A's request counter is polled every 50 ms, so the
report shows how many requests A absorbed before its breaker opened, when traffic came
back after healing, and the client-side errors and latency before, during and after.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import percentile
from bench.procs import OUT, ROOT, Service, free_port, pinned, start_fake_upstream

CONFIG = """
store: {{traces: none}}
upstreams:
  - {{name: a, base_url: "{a}"}}
  - {{name: b, base_url: "{b}"}}
models:
  - name: fake-small
    endpoints: [{{upstream: a}}, {{upstream: b}}]
default: {{models: [fake-small]}}
dispatch:
  breaker: {{consecutive_failures: {failures}, open_s: {open_s}}}
"""


def _post(url: str, data: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=orjson.dumps(data), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def _count(url: str) -> int | None:
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(url + "/_stats", timeout=1) as response,
    ):
        counts = orjson.loads(response.read())["counts"]
        return int(counts.get("POST /v1/chat/completions", 0))
    return None


def _window(samples: list[list[Any]], start: float, end: float) -> dict[str, Any]:
    inside = [s for s in samples if start <= s[0] < end]
    ok = sorted(s[3] - s[1] for s in inside if s[5])
    return {
        "requests": len(inside),
        "errors": sum(1 for s in inside if not s[5]),
        "p50_ms": round(percentile(ok, 0.5) * 1000, 2),
        "p99_ms": round(percentile(ok, 0.99) * 1000, 2),
        "max_ms": round(ok[-1] * 1000, 2) if ok else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    """Run one failover scenario and print its JSON summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.failover")
    parser.add_argument("--fault", default="refuse", help="a fake upstream fault, or 'kill'")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--fail-at", type=float, default=4.0)
    parser.add_argument("--heal-at", type=float, default=8.0)
    parser.add_argument("--breaker-failures", type=int, default=5)
    parser.add_argument("--breaker-open-s", type=float, default=3.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--cpu-sut", default="1")
    parser.add_argument("--cpu-aux", default="0")
    args = parser.parse_args(argv)
    a = start_fake_upstream(args.cpu_aux, 8, args.duration + 120)
    b = start_fake_upstream(args.cpu_aux, 8, args.duration + 120)
    a_root = a.url.removesuffix("/v1")
    OUT.mkdir(parents=True, exist_ok=True)
    config = Path(tempfile.mkstemp(suffix=".yaml", dir=OUT)[1])
    config.write_text(
        CONFIG.format(a=a.url, b=b.url, failures=args.breaker_failures, open_s=args.breaker_open_s)
    )
    port = free_port()
    exe = str(Path(sys.executable).parent / "crossroads")
    cmd = pinned([exe, "serve", "-c", str(config), "--port", str(port)], args.cpu_sut)
    base = f"http://127.0.0.1:{port}"
    gateway = Service("crossroads-failover", cmd, base + "/v1", base + "/health")
    dump = OUT / "failover-samples.json"
    polls: list[tuple[float, int | None]] = []
    try:
        gateway.start(timeout=60)
        load = [
            "--url",
            gateway.url + "/chat/completions",
            "--model",
            "fake-small",
            "--mode",
            "open",
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
            "--warmup",
            "0",
            "--timeout",
            "10",
            "--dump",
            str(dump),
        ]
        load += ["--stream"] if args.stream else []
        loadgen = subprocess.Popen(
            pinned([sys.executable, "-m", "bench.loadgen", *load], args.cpu_aux),
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        start = time.time()
        failed = healed = False
        while loadgen.poll() is None and time.time() - start < args.duration + 60:
            now = time.time() - start
            if not failed and now >= args.fail_at:
                failed, fail_time = True, time.time()
                if args.fault == "kill":
                    a.stop()
                else:
                    _post(a_root + "/_control", {"fault": args.fault})
            if failed and not healed and now >= args.heal_at:
                healed, heal_time = True, time.time()
                if args.fault == "kill":
                    a = start_fake_upstream(args.cpu_aux, 8, args.duration + 120)
                    a_root = a.url.removesuffix("/v1")  # a new port: A stays down for good
                else:
                    _post(a_root + "/_control", {"fault": None})
            polls.append((round(now, 3), _count(a_root)))
            time.sleep(0.05)
        summary = orjson.loads(loadgen.communicate(timeout=60)[0].splitlines()[-1])
    finally:
        gateway.stop()
        a.stop()
        b.stop()
        config.unlink(missing_ok=True)
    data = orjson.loads(dump.read_bytes())
    offset = data["start_unix"] - start  # loadgen time 0, in our clock
    samples = [[s[0] + offset, *s[1:]] for s in data["samples"]]
    fail_at, heal_at = fail_time - start, heal_time - start
    counts = [(t, c) for t, c in polls if c is not None]
    at_fail = next((c for t, c in counts if t >= fail_at), 0)
    # A's breaker is open once A stops receiving requests (half-open probes aside).
    last_hit = max(
        (
            t
            for (t, c), (_, prev) in zip(counts[1:], counts, strict=False)
            if fail_at <= t < heal_at and c > prev
        ),
        default=fail_at,
    )
    absorbed = max((c for t, c in counts if fail_at <= t < heal_at), default=at_fail) - at_fail
    back = next(
        (
            t
            for (t, c), (_, prev) in zip(counts[1:], counts, strict=False)
            if t > heal_at and c > prev
        ),
        None,
    )
    result = {
        "fault": args.fault,
        "rate": args.rate,
        "stream": args.stream,
        "breaker": {"consecutive_failures": args.breaker_failures, "open_s": args.breaker_open_s},
        "requests": summary["requests"],
        "client_errors": summary["errors"],
        "error_kinds": summary["error_kinds"],
        "requests_to_A_after_fault": absorbed,
        "last_request_to_A_after_fault_s": round(last_hit - fail_at, 3),
        "traffic_back_on_A_after_heal_s": round(back - heal_at, 3) if back else None,
        "before": _window(samples, 0.5, fail_at),
        "first_second_after_fault": _window(samples, fail_at, fail_at + 1),
        "fault_to_heal": _window(samples, fail_at, heal_at),
        "after_heal": _window(samples, heal_at, args.duration),
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
