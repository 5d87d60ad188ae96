"""Request metrics, aggregated from finished traces in plain Python dictionaries.

:meth:`RequestMetrics.observe` folds one :class:`~crossroads.types.Trace` into counters and
histograms keyed by label tuples: about 2 µs a request, against about 20 µs through
prometheus-client's own metric objects and 28 µs in its multiprocess mode (bench/RESULTS.md,
"Metrics"). :meth:`RequestMetrics.snapshot` is the JSON-able state that workers exchange
and :mod:`crossroads.observe.exposition` renders.

Every label value comes from the config (entrypoints, decisions, models, endpoints, signals,
API key and team names) or from a small fixed set (statuses, formats, failure categories):
nothing a client writes becomes a label, so the number of series is bounded by the config.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from crossroads.types import Trace

REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
ROUTING_BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
ENTRY = ("entrypoint", "decision", "model", "endpoint")


@dataclass(frozen=True, slots=True)
class Family:
    """One metric: its name (counters without ``_total``), kind, help and labels."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histograms: upper bounds in seconds


FAMILIES = {
    f.name: f
    for f in (
        Family(
            "crossroads_requests",
            "counter",
            "Model calls answered, by the HTTP status the client got.",
            (*ENTRY, "format", "status"),
        ),
        Family(
            "crossroads_errors",
            "counter",
            "Model calls that failed, by status and error code.",
            (*ENTRY, "status", "code"),
        ),
        Family(
            "crossroads_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its last byte.",
            (*ENTRY, "status_class"),
            REQUEST_BUCKETS_S,
        ),
        Family(
            "crossroads_time_to_first_token_seconds",
            "histogram",
            "Time from a request's arrival to its answer (a stream: its first content).",
            (*ENTRY, "stream"),
            REQUEST_BUCKETS_S,
        ),
        Family(
            "crossroads_routing_duration_seconds",
            "histogram",
            "Time spent choosing the model: signals, rules, selection.",
            ("entrypoint", "decision"),
            ROUTING_BUCKETS_S,
        ),
        Family(
            "crossroads_upstream_duration_seconds",
            "histogram",
            "One upstream attempt, until its answer (a stream: its first content).",
            ("model", "endpoint", "outcome"),
            REQUEST_BUCKETS_S,
        ),
        Family(
            "crossroads_upstream_errors",
            "counter",
            "Failed upstream attempts, by failure category.",
            ("model", "endpoint", "category"),
        ),
        Family(
            "crossroads_retries",
            "counter",
            "Upstream attempts after a request's first, by where they went.",
            ("model", "endpoint"),
        ),
        Family(
            "crossroads_fallbacks",
            "counter",
            "Moves from one model to the next of the chain within a request.",
            ("from_model", "to_model"),
        ),
        Family(
            "crossroads_tokens",
            "counter",
            "Tokens of settled answers (upstream usage, or counted when it reports none).",
            ("model", "key", "team", "kind"),
        ),
        Family(
            "crossroads_cost_usd",
            "counter",
            "Actual cost of settled answers, in USD at the configured prices.",
            ("model", "key", "team"),
        ),
        Family(
            "crossroads_signal_duration_seconds",
            "histogram",
            "Time one signal took for one request.",
            ("signal",),
            ROUTING_BUCKETS_S,
        ),
        Family(
            "crossroads_signal_errors",
            "counter",
            "Signals that timed out or failed (and counted as false).",
            ("signal", "reason"),
        ),
        Family(
            "crossroads_endpoint_in_flight",
            "gauge",
            "Upstream calls in progress on an endpoint, over all workers.",
            ("endpoint",),
        ),
        Family(
            "crossroads_endpoint_circuit",
            "gauge",
            "Workers whose circuit breaker for the endpoint is in this state.",
            ("endpoint", "state"),
        ),
        Family(
            "crossroads_trace_queue_depth",
            "gauge",
            "Traces waiting for the trace writer, over all workers.",
        ),
        Family("crossroads_traces_written", "counter", "Traces the trace writer stored."),
        Family(
            "crossroads_traces_dropped",
            "counter",
            "Traces the trace writer dropped, by reason.",
            ("reason",),
        ),
        Family("crossroads_workers", "gauge", "Worker processes whose metrics are included."),
    )
}
STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
STREAM = {True: "true", False: "false"}
BREAKER_STATES = ("closed", "open", "half_open")

Histogram = list[float]  # bucket counts (one per bound, then +Inf), then the sum in seconds


class RequestMetrics:
    """The counters and histograms of one worker. ``names``: entrypoints and models, the
    only requested names kept as labels (any other is ``unknown``)."""

    def __init__(self, names: frozenset[str], by_key: bool = True) -> None:
        self.names = names
        self.by_key = by_key
        self.counters: dict[str, dict[tuple[str, ...], float]] = {
            f.name: {} for f in FAMILIES.values() if f.kind == "counter"
        }
        self.histograms: dict[str, dict[tuple[str, ...], Histogram]] = {
            f.name: {} for f in FAMILIES.values() if f.kind == "histogram"
        }
        self._request = self.counters["crossroads_requests"]
        self._errors = self.counters["crossroads_errors"]
        self._upstream_errors = self.counters["crossroads_upstream_errors"]
        self._retries = self.counters["crossroads_retries"]
        self._fallbacks = self.counters["crossroads_fallbacks"]
        self._signal_errors = self.counters["crossroads_signal_errors"]
        self._usage: dict[tuple[str, str, str], list[float]] = {}  # prompt, completion, cost
        self._duration = self._histogram("crossroads_request_duration_seconds")
        self._ttft = self._histogram("crossroads_time_to_first_token_seconds")
        self._routing = self._histogram("crossroads_routing_duration_seconds")
        self._upstream = self._histogram("crossroads_upstream_duration_seconds")
        self._signal = self._histogram("crossroads_signal_duration_seconds")

    def _histogram(self, name: str) -> Callable[[tuple[str, ...], float], None]:
        """An ``observe(labels, ms)`` for histogram ``name`` (bounds compared in ms)."""
        table = self.histograms[name]
        bounds = tuple(b * 1000 for b in FAMILIES[name].buckets)
        size = len(bounds) + 1

        def observe(labels: tuple[str, ...], ms: float) -> None:
            h = table.get(labels)
            if h is None:
                h = table[labels] = [0.0] * (size + 1)
            h[bisect_left(bounds, ms)] += 1
            h[size] += ms / 1000

        return observe

    def observe(self, trace: Trace) -> None:
        """Fold one finished request into the metrics."""
        requested = trace.requested_model
        entry = requested if requested in self.names else ("unknown" if requested else "")
        route = trace.route
        decision = model = ""
        if route is not None:
            decision, model = route.decision, trace.model or route.model
        endpoint = trace.upstream or ""
        status = trace.status
        code = str(status)
        labels = (entry, decision, model, endpoint)
        counter = self._request
        key: tuple[str, ...] = (*labels, trace.format, code)
        counter[key] = counter.get(key, 0) + 1
        if status >= 400:
            key = (*labels, code, trace.error_code or "")
            self._errors[key] = self._errors.get(key, 0) + 1
        if trace.latency_ms is not None:
            self._duration((*labels, STATUS_CLASS.get(status // 100, "")), trace.latency_ms)
        if trace.ttft_ms is not None:
            self._ttft((*labels, STREAM[trace.stream]), trace.ttft_ms)
        if route is not None:
            self._routing((entry, decision), route.routing_ms)
            for signal in route.signals.values():
                self._signal((signal.name,), signal.elapsed_ms)
                if signal.error is not None:
                    key = (signal.name, "timeout" if signal.timed_out else "error")
                    self._signal_errors[key] = self._signal_errors.get(key, 0) + 1
        if trace.attempts:
            self._attempts(trace)
        usage = trace.usage
        if usage is not None and model:
            caller = trace.caller
            who = (model, "", "")
            if self.by_key and caller is not None:
                who = (model, caller.key_name or "", caller.team or "")
            totals = self._usage.get(who)
            if totals is None:
                totals = self._usage[who] = [0, 0, 0.0]
            totals[0] += usage.prompt_tokens
            totals[1] += usage.completion_tokens
            totals[2] += trace.cost or 0.0

    def _attempts(self, trace: Trace) -> None:
        previous = None
        for attempt in trace.attempts:
            where = (attempt.model, attempt.upstream)
            self._upstream((*where, attempt.outcome), attempt.latency_ms)
            if attempt.outcome == "error":
                key: tuple[str, ...] = (*where, attempt.category or "error")
                self._upstream_errors[key] = self._upstream_errors.get(key, 0) + 1
            if previous is not None:
                self._retries[where] = self._retries.get(where, 0) + 1
                if attempt.model != previous:
                    key = (previous, attempt.model)
                    self._fallbacks[key] = self._fallbacks.get(key, 0) + 1
            previous = attempt.model

    def snapshot(self, live: dict[str, dict[tuple[str, ...], float]]) -> dict[str, Any]:
        """This worker's state as JSON-able data, stamped with the time: its counters and
        histograms, and ``live`` values read at this moment (``{family: {labels: value}}``:
        gauges, and counters kept elsewhere, such as the trace writer's)."""
        counters: dict[str, list[Any]] = {
            name: [[list(labels), value] for labels, value in table.items()]
            for name, table in self.counters.items()
        }
        tokens, cost = counters["crossroads_tokens"], counters["crossroads_cost_usd"]
        for (model, key, team), (prompt, completion, usd) in self._usage.items():
            tokens.append([[model, key, team, "prompt"], prompt])
            tokens.append([[model, key, team, "completion"], completion])
            cost.append([[model, key, team], usd])
        gauges: dict[str, list[Any]] = {}
        for name, table in live.items():
            rows = counters if FAMILIES[name].kind == "counter" else gauges
            rows[name] = [[list(labels), value] for labels, value in table.items()]
        return {
            "written_at": time.time(),
            "counters": counters,
            "histograms": {
                name: [[list(labels), list(h)] for labels, h in table.items()]
                for name, table in self.histograms.items()
            },
            "gauges": gauges,
        }
