"""Memory soak: RSS of ``crossroads serve`` over a long run at a fixed rate.

    python -m bench.soak --config crossroads-heuristic --rate 200 --minutes 10

Starts the fake upstream and crossroads (pinned like ``python -m bench``), sends an
open-loop load, samples the server's RSS every ``--every`` seconds, and prints the
samples and the growth from the first minute to the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import orjson

from bench.procs import OUT, ROOT, pinned, rss_mb, start_fake_upstream
from bench.targets import crossroads_service


def main(argv: list[str] | None = None) -> None:
    """Run the soak and print RSS samples (MB) and the load generator's summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--config", default="crossroads-heuristic")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--cpu-sut", default="1")
    parser.add_argument("--cpu-aux", default="0")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    upstream = start_fake_upstream(args.cpu_aux, 8, seconds + 300)
    service = crossroads_service(args.config, upstream.url, args.cpu_sut)
    samples: list[tuple[float, float]] = []
    try:
        service.start(timeout=60)
        samples.append((0.0, rss_mb(service.pid)))
        load = [
            "--url",
            service.url + "/chat/completions",
            "--model",
            "auto",
            "--mode",
            "open",
            "--rate",
            str(args.rate),
            "--duration",
            str(seconds),
            "--warmup",
            "0",
        ]
        if args.stream:
            load.append("--stream")
        cmd = pinned([sys.executable, "-m", "bench.loadgen", *load], args.cpu_aux)
        loadgen = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE)
        start = time.monotonic()
        while loadgen.poll() is None and time.monotonic() - start < seconds + 120:
            time.sleep(args.every)
            samples.append((round(time.monotonic() - start), rss_mb(service.pid)))
            print(f"t={samples[-1][0]:>5.0f}s rss={samples[-1][1]} MB", flush=True)
        out, _ = loadgen.communicate(timeout=120)
        summary = orjson.loads(out.splitlines()[-1])
    finally:
        service.stop()
        upstream.stop()
    after_first_minute = [rss for t, rss in samples if t >= 60] or [samples[-1][1]]
    result = {
        "config": args.config,
        "rate": args.rate,
        "minutes": args.minutes,
        "stream": args.stream,
        "rss_mb": samples,
        "growth_after_first_minute_mb": round(after_first_minute[-1] - after_first_minute[0], 1),
        "requests": summary["requests"],
        "errors": summary["errors"],
        "latency_ms": summary["latency_ms"],
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"soak-{stamp}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
