"""Instructions per request of OpenTelemetry, by callgrind: the in-process request path of
``bench.request_path`` (metrics off) with ``opentelemetry.enabled`` off or on (every request
sampled, its spans built by the export thread and handed to an exporter that discards them:
what OTLP encoding and sending cost is the exporter's, not counted here).

    python -m bench.otel_cost [--requests 512]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from bench.instructions import WARM, _callgrind, _collected, _toggle


async def _child(requests: int, otel: bool) -> None:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    import bench.request_path as request_path
    from crossroads.gateway.app import Gateway
    from crossroads.observe.otel import SpanExport

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    def spans(gateway: Gateway) -> SpanExport:
        return SpanExport(gateway.config.opentelemetry, gateway.config).start(Discard())

    Gateway._spans = spans  # type: ignore[method-assign]
    parse = request_path.parse_config
    settings = {"enabled": otel, "sample_ratio": 1.0}
    request_path.parse_config = lambda raw: parse({**raw, "opentelemetry": settings})  # type: ignore[assignment]
    app, call = await request_path.app_and_request(False, False)
    for _ in range(WARM):
        await call()
    if app.spans is not None:
        app.spans.flush()
    _toggle(os.getpid(), True)
    for _ in range(requests):
        await call()
    if app.spans is not None:
        app.spans.flush()  # the spans of these requests, built inside the window
    _toggle(os.getpid(), False)
    await app.shutdown()


def measure(requests: int, otel: bool) -> float:
    cmd = [sys.executable, "-m", "bench.otel_cost", "--child", "on" if otel else "off"]
    child = _callgrind([*cmd, "--requests", str(requests)], cwd=os.getcwd())
    _, err = child.communicate(timeout=1800)
    if child.returncode != 0:
        raise SystemExit(err.decode()[-2000:])
    return _collected(err) / requests


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.otel_cost")
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        asyncio.run(_child(args.requests, args.child == "on"))
        return
    off, on = measure(args.requests, False), measure(args.requests, True)
    print(f"opentelemetry off: {off:,.0f} instructions per request")
    print(f"opentelemetry on:  {on:,.0f} instructions per request ({on - off:+,.0f})")


if __name__ == "__main__":
    main()
