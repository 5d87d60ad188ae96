"""OpenTelemetry spans from finished traces, exported by OTLP over HTTP (the ``otel`` extra).

Nothing is traced on the request path: the gateway hands each finished
:class:`~crossroads.types.Trace` to :meth:`SpanExport.observe` (an append to a bounded
queue), and a thread turns it into spans afterwards, with the times the trace recorded:

    POST /v1/chat/completions (server)       the request, with GenAI attributes
    ├── route                                signals → decision → selection
    │   └── signal keyword:code, ...         one per signal computed
    └── chat small (client), ...             one per upstream attempt

An attempt's span id is made when the attempt starts and sent upstream in ``traceparent``
(``propagate``), so the upstream's own spans hang below it. Attribute names follow the
OpenTelemetry semantic conventions for GenAI and HTTP; crossroads' own are ``crossroads.*``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from functools import cache
from types import SimpleNamespace
from typing import Any

from crossroads.config import Config, OpenTelemetryConfig
from crossroads.observe.context import TraceContext, trace_context
from crossroads.types import Attempt, Route, Trace

log = logging.getLogger("crossroads.otel")

PATHS = {
    "openai_chat": "/v1/chat/completions",
    "openai_completions": "/v1/completions",
    "anthropic_messages": "/v1/messages",
    "openai_responses": "/v1/responses",
    "openai_embeddings": "/v1/embeddings",
}
OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
PROVIDERS = {"openai": "openai", "anthropic": "anthropic"}  # other kinds: their kind's name
BATCH = 512


@cache
def _sdk() -> SimpleNamespace:
    """The OpenTelemetry classes spans are made of, imported once (an import statement
    in a function that runs per span costs more than the span's own fields)."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace.status import Status, StatusCode

    return SimpleNamespace(
        Event=Event,
        ReadableSpan=ReadableSpan,
        SpanContext=SpanContext,
        SpanKind=SpanKind,
        sampled=TraceFlags(TraceFlags.SAMPLED),
        error=Status(StatusCode.ERROR),
        unset=Status(StatusCode.UNSET),
    )


def _span_id() -> int:
    return int.from_bytes(os.urandom(8), "big") or 1


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class SpanExport:
    """Turns traces into spans and exports them from a thread; a full queue drops (and
        counts) rather than wait. ``async_signals``: the signals computed concurrently (their spans
    overlap). Build with ``SpanExport(config.opentelemetry, config).start()``."""

    def __init__(
        self,
        settings: OpenTelemetryConfig,
        config: Config,
        async_signals: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.config = config
        self.async_signals = async_signals
        self.exported = 0
        self.dropped = 0
        self._queue: deque[Trace] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self, exporter: Any = None) -> SpanExport:
        """Build the exporter (``exporter``: any OpenTelemetry ``SpanExporter``; default OTLP
        over HTTP at ``endpoint``) and start the export thread."""
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        except ImportError as exc:
            from crossroads.exceptions import CrossroadsError

            raise CrossroadsError(
                'opentelemetry.enabled needs the otel extra: pip install "crossroads[otel]"'
            ) from exc
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=self.settings.endpoint, timeout=self.settings.timeout_s
            )
        self.exporter = exporter
        self.resource = Resource.create({"service.name": self.settings.service_name})
        self.scope = InstrumentationScope("crossroads")
        upstreams = {u.name: u for u in self.config.upstreams}
        self._providers = {name: PROVIDERS.get(u.kind, u.kind) for name, u in upstreams.items()}
        self._servers = {
            name: _server(getattr(u, "base_url", None)) for name, u in upstreams.items()
        }
        self._thread = threading.Thread(target=self._run, name="crossroads-otel", daemon=True)
        self._thread.start()
        return self

    def observe(self, trace: Trace) -> None:
        """Queue a finished trace for export, if it is sampled (never blocks)."""
        if not trace_context(trace, self.settings.sample_ratio).sampled:
            return
        if len(self._queue) >= self.settings.max_queue:
            self.dropped += 1
            return
        self._queue.append(trace)
        if len(self._queue) >= BATCH:
            self._wake.set()

    def flush(self) -> None:
        """Export everything queued now (tests, shutdown); runs on the caller's thread."""
        while self._queue:
            self._export_batch()

    def close(self) -> None:
        """Export what is queued, stop the thread, shut the exporter down."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.settings.timeout_s + 5)
            self._thread = None
        self.flush()
        self.exporter.shutdown()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the exporter's failure must not end the thread
                log.exception("exporting spans failed")

    def _export_batch(self) -> None:
        traces = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
        spans = []
        for trace in traces:
            try:
                spans += self.spans(trace)
            except Exception:
                self.dropped += 1
                log.exception("cannot build the spans of trace %s", trace.trace_id)
        result = self.exporter.export(spans)
        if getattr(result, "name", "SUCCESS") == "SUCCESS":
            self.exported += len(spans)
        else:
            self.dropped += len(traces)
            log.warning("the span exporter refused %d spans (%s)", len(spans), result)

    # ------------------------------------------------------------------ spans

    def spans(self, trace: Trace) -> list[Any]:
        """The spans of one trace, request span first."""
        sdk = _sdk()
        context = trace_context(trace, self.settings.sample_ratio)
        request_id = _span_id()
        start = trace.created_at
        end = start + (trace.latency_ms or 0.0) / 1000
        operation = OPERATIONS.get(trace.operation, trace.operation)
        route = trace.route
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "url.path": PATHS.get(trace.format, trace.format),
            "http.response.status_code": trace.status,
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": trace.requested_model,
            "crossroads.trace_id": trace.trace_id,
            "crossroads.format": trace.format,
            "crossroads.stream": trace.stream,
        }
        if route is not None:
            attributes["crossroads.decision"] = route.decision
            attributes["crossroads.model"] = trace.model or route.model
            attributes["crossroads.estimated_cost_usd"] = route.estimated_cost
        if trace.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = trace.usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = trace.usage.completion_tokens
        if trace.cost is not None:
            attributes["crossroads.cost_usd"] = trace.cost
        if trace.caller is not None and trace.caller.key_name:
            attributes["crossroads.api_key"] = trace.caller.key_name
            if trace.caller.team:
                attributes["crossroads.team"] = trace.caller.team
        if trace.status >= 400:
            attributes["error.type"] = trace.error_code or str(trace.status)
        events = []
        if trace.ttft_ms is not None:
            attributes["crossroads.ttft_ms"] = trace.ttft_ms
            events.append(sdk.Event("first_token", timestamp=_ns(start + trace.ttft_ms / 1000)))
        name = f"POST {attributes['url.path']}"
        spans = [
            self._span(
                name,
                context,
                request_id,
                context.parent_span_id,
                start,
                end,
                attributes,
                sdk.SpanKind.SERVER,
                trace.status >= 500,
                events,
            )
        ]
        if route is not None and route.started_at:
            spans += self._route_spans(route, context, request_id)
        for i, attempt in enumerate(trace.attempts):
            last = i == len(trace.attempts) - 1
            spans.append(self._attempt_span(attempt, trace, context, request_id, last, end))
        return spans

    def _route_spans(self, route: Route, context: TraceContext, parent: int) -> list[Any]:
        route_id = _span_id()
        start = route.started_at
        attributes: dict[str, Any] = {
            "crossroads.decision": route.decision,
            "crossroads.selection": route.selection,
            "crossroads.model": route.model,
            "crossroads.rule_path": list(route.rule_path),
            "crossroads.candidates": [c.model for c in route.candidates],
        }
        spans = [
            self._span(
                "route",
                context,
                route_id,
                parent,
                start,
                start + route.routing_ms / 1000,
                attributes,
            )
        ]
        # Cheap signals run one after another, then the asynchronous ones together.
        at = start
        for signal in route.signals.values():
            facts: dict[str, Any] = {"crossroads.signal.matched": signal.matched}
            if isinstance(signal.value, bool | int | float | str):
                facts["crossroads.signal.value"] = signal.value
            if signal.error is not None:
                facts["error.type"] = "timeout" if signal.timed_out else "signal_error"
            took = signal.elapsed_ms / 1000
            spans.append(
                self._span(
                    f"signal {signal.name}",
                    context,
                    _span_id(),
                    route_id,
                    at,
                    at + took,
                    facts,
                    error=signal.error is not None,
                )
            )
            if signal.name not in self.async_signals:
                at += took
        return spans

    def _attempt_span(
        self,
        attempt: Attempt,
        trace: Trace,
        context: TraceContext,
        parent: int,
        last: bool,
        request_end: float,
    ) -> Any:
        upstream, _, upstream_model = attempt.upstream.partition("/")
        operation = OPERATIONS.get(trace.operation, trace.operation)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": self._providers.get(upstream, upstream),
            "gen_ai.request.model": upstream_model,
            "crossroads.model": attempt.model,
            "crossroads.endpoint": attempt.upstream,
        }
        address, port = self._servers.get(upstream, (None, None))
        if address:
            attributes["server.address"] = address
            attributes["server.port"] = port
        start = trace.created_at + (attempt.at_ms or 0.0) / 1000
        end = start + attempt.latency_ms / 1000
        ok = attempt.outcome == "ok"
        if ok and last:
            if trace.stream:  # the call went on until the stream's end
                end = max(end, request_end)
            if trace.usage is not None:
                attributes["gen_ai.usage.input_tokens"] = trace.usage.prompt_tokens
                attributes["gen_ai.usage.output_tokens"] = trace.usage.completion_tokens
        if not ok:
            attributes["error.type"] = attempt.category or "error"
            if attempt.status is not None:
                attributes["http.response.status_code"] = attempt.status
        span_id = int(attempt.span_id, 16) if attempt.span_id else _span_id()
        return self._span(
            f"{operation} {upstream_model}",
            context,
            span_id,
            parent,
            start,
            end,
            attributes,
            _sdk().SpanKind.CLIENT,
            not ok,
        )

    def _span(
        self,
        name: str,
        context: TraceContext,
        span_id: int,
        parent: int | str | None,
        start: float,
        end: float,
        attributes: dict[str, Any],
        kind: Any = None,
        error: bool = False,
        events: list[Any] | None = None,
    ) -> Any:
        sdk = _sdk()
        trace_id = int(context.trace_id, 16)
        flags = sdk.sampled
        parent_context = None
        if parent is not None:
            remote = isinstance(parent, str)
            parent_id = int(parent, 16) if isinstance(parent, str) else parent
            parent_context = sdk.SpanContext(
                trace_id, parent_id, is_remote=remote, trace_flags=flags
            )
        return sdk.ReadableSpan(
            name,
            context=sdk.SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags),
            parent=parent_context,
            resource=self.resource,
            attributes=attributes,
            events=events or (),
            kind=kind if kind is not None else sdk.SpanKind.INTERNAL,
            status=sdk.error if error else sdk.unset,
            start_time=_ns(start),
            end_time=max(_ns(end), _ns(start)),
            instrumentation_scope=self.scope,
        )


def _server(base_url: str | None) -> tuple[str | None, int | None]:
    """Host and port of an upstream's ``base_url``."""
    if not base_url:
        return None, None
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
