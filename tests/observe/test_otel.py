"""OpenTelemetry spans of real requests, received by an OTLP/HTTP collector this test runs on
127.0.0.1 (protobuf decoded with opentelemetry-proto), and the ``traceparent`` the fake
upstream received."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

pytest.importorskip(
    "opentelemetry.sdk", reason='needs the otel extra: pip install "crossroads[otel]"'
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402

from crossroads.gateway import create_app  # noqa: E402
from crossroads.store.memory import MemoryTraceStore  # noqa: E402
from tests.conftest import routing_config  # noqa: E402
from tests.support.fake_upstream import FakeUpstream  # noqa: E402

CHAT = "/v1/chat/completions"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP trace receiver: ``spans`` holds every span received, as dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                raw = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    raw = gzip.decompress(raw)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(raw)
                collector.receive(self.path, request)
                body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def receive(self, path: str, request: Any) -> None:
        assert path == "/v1/traces"
        for resource_spans in request.resource_spans:
            self.resources.append(_attributes(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex() or None,
                            "kind": span.kind,
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "error": span.status.code == 2,
                            "attributes": _attributes(span.attributes),
                            "events": [e.name for e in span.events],
                        }
                    )

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["trace_id"] == trace_id]


def _attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in pairs:
        which = kv.value.WhichOneof("value")
        raw = getattr(kv.value, which)
        out[kv.key] = (
            [getattr(v, v.WhichOneof("value")) for v in raw.values]
            if which == "array_value"
            else raw
        )
    return out


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    thread = threading.Thread(target=c.server.serve_forever, daemon=True)
    thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


async def _run(config: Any, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    app = create_app(config, store=MemoryTraceStore())
    await app.startup()
    out = []
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=20
        ) as client:
            for request in requests:
                out.append(await client.post(CHAT, **request))
    finally:
        await app.shutdown()  # exports what is queued
    return out


def _otel(collector: Collector, **settings: Any) -> dict[str, Any]:
    return {"enabled": True, "endpoint": collector.url, **settings}


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


async def test_a_request_continues_the_callers_trace_with_route_signal_and_attempt_spans(
    collector: Collector, fake_upstream: FakeUpstream
) -> None:
    config = routing_config(fake_upstream.base_url, opentelemetry=_otel(collector))
    incoming = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    (r,) = await _run(
        config, [{"json": _chat("fix my python"), "headers": {"traceparent": incoming}}]
    )
    assert r.status_code == 200
    spans = collector.trace(CALLER_TRACE)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"POST /v1/chat/completions", "route", "signal keyword:code", "chat b"}
    request = by_name["POST /v1/chat/completions"]
    assert request["parent"] == CALLER_SPAN and request["kind"] == 2  # SERVER
    usage = r.json()["usage"]
    assert (
        request["attributes"].items()
        >= {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "auto",
            "http.response.status_code": 200,
            "url.path": CHAT,
            "crossroads.decision": "coding",
            "crossroads.model": "big",
            "crossroads.trace_id": r.headers["x-crossroads-trace-id"],
            "gen_ai.usage.input_tokens": usage["prompt_tokens"],
            "gen_ai.usage.output_tokens": usage["completion_tokens"],
        }.items()
    )
    assert "first_token" in request["events"]
    route, signal, attempt = by_name["route"], by_name["signal keyword:code"], by_name["chat b"]
    assert route["parent"] == request["span_id"] and signal["parent"] == route["span_id"]
    assert route["attributes"]["crossroads.candidates"] == ["big"]
    assert signal["attributes"]["crossroads.signal.matched"] is True
    assert attempt["parent"] == request["span_id"] and attempt["kind"] == 3  # CLIENT
    assert (
        attempt["attributes"].items()
        >= {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "b",
            "server.address": "127.0.0.1",
            "crossroads.endpoint": "fake/b",
        }.items()
    )
    assert request["start"] <= route["start"] <= route["end"] <= attempt["start"]
    # The upstream was called as the attempt span's child, in the caller's trace.
    assert fake_upstream.app.traceparents == [f"00-{CALLER_TRACE}-{attempt['span_id']}-01"]
    assert collector.resources[0]["service.name"] == "crossroads"


async def test_a_new_trace_is_named_by_the_crossroads_trace_id_and_retries_are_attempt_spans(
    collector: Collector, fake_upstream: FakeUpstream
) -> None:
    config = routing_config(
        fake_upstream.base_url,
        opentelemetry=_otel(collector),
        dispatch={"retries": {"backoff_base_ms": 1, "backoff_max_ms": 2}},
    )
    fake_upstream.set_fault("503", count=1)
    (r,) = await _run(config, [{"json": _chat("hello", stream=True)}])
    assert r.status_code == 200
    trace_id = r.headers["x-crossroads-trace-id"].rjust(32, "0")
    spans = collector.trace(trace_id)
    request = next(s for s in spans if s["kind"] == 2)
    assert request["parent"] is None and request["attributes"]["crossroads.stream"] is True
    attempts = [s for s in spans if s["kind"] == 3]
    assert [a["name"] for a in attempts] == ["chat s", "chat s"]
    failed, answered = sorted(attempts, key=lambda a: a["start"])
    assert failed["error"] and failed["attributes"]["error.type"] == "http_503"
    assert failed["attributes"]["http.response.status_code"] == 503
    assert not answered["error"] and "gen_ai.usage.output_tokens" in answered["attributes"]
    assert fake_upstream.app.traceparents == [
        f"00-{trace_id}-{failed['span_id']}-01",
        f"00-{trace_id}-{answered['span_id']}-01",
    ]


async def test_sampling_follows_the_caller_then_the_ratio(
    collector: Collector, fake_upstream: FakeUpstream
) -> None:
    config = routing_config(fake_upstream.base_url, opentelemetry=_otel(collector, sample_ratio=0))
    unsampled_caller = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    sampled_caller = f"00-{'1' * 32}-{CALLER_SPAN}-01"
    responses = await _run(
        config,
        [
            {"json": _chat("hello")},
            {"json": _chat("hello"), "headers": {"traceparent": unsampled_caller}},
            {"json": _chat("hello"), "headers": {"traceparent": sampled_caller}},
            {"json": _chat("hello"), "headers": {"traceparent": "00-garbage-01"}},
        ],
    )
    assert [r.status_code for r in responses] == [200] * 4
    assert {s["trace_id"] for s in collector.spans} == {"1" * 32}
    flags = [t.rsplit("-", 1)[1] for t in fake_upstream.app.traceparents]
    assert flags == ["00", "00", "01", "00"]
    assert fake_upstream.app.traceparents[1].startswith(f"00-{CALLER_TRACE}-")


async def test_no_traceparent_upstream_when_tracing_is_off_or_not_propagated(
    collector: Collector, fake_upstream: FakeUpstream
) -> None:
    await _run(routing_config(fake_upstream.base_url), [{"json": _chat("hello")}])
    quiet = routing_config(fake_upstream.base_url, opentelemetry=_otel(collector, propagate=False))
    await _run(quiet, [{"json": _chat("hello")}])
    assert fake_upstream.app.traceparents == []
    (attempt,) = [s for s in collector.spans if s["kind"] == 3]  # spans still exported
    assert attempt["name"] == "chat s"
