"""Request metrics, aggregated from finished traces in plain Python dictionaries.

:meth:`RequestMetrics.observe` queues one :class:`~crossroads.types.Trace`; queued traces are
folded into counters and histograms keyed by label tuples, 256 at a time: about 3 µs a
request in all, against about 20 µs through prometheus-client's own metric objects and 28 µs
in its multiprocess mode (bench/RESULTS.md, "Metrics"). :meth:`RequestMetrics.snapshot` is
the JSON-able state that workers exchange and :mod:`crossroads.observe.exposition` renders.

Every label value comes from the config (entrypoints, decisions, models, endpoints, signals,
API key and team names) or from a small fixed set (statuses, formats, failure categories):
nothing a client writes becomes a label, so the number of series is bounded by the config.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Literal

from crossroads.types import Route, Trace

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
            "crossroads_cache_lookups",
            "counter",
            "Semantic cache lookups, by outcome (hit, miss, store).",
            ("entrypoint", "decision", "outcome"),
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
# (while aggregating, the sum is in ms; :meth:`RequestMetrics.tables` gives seconds)


def _bounds_ms(name: str) -> tuple[float, ...]:
    return tuple(b * 1000 for b in FAMILIES[name].buckets)


REQUEST_MS = _bounds_ms("crossroads_request_duration_seconds")
ROUTING_MS = _bounds_ms("crossroads_routing_duration_seconds")


def _histogram(bounds: tuple[float, ...]) -> Histogram:
    return [0.0] * (len(bounds) + 2)


def _seconds(h: Histogram) -> Histogram:
    """A copy of ``h`` with its sum in seconds (aggregated in ms)."""
    out = list(h)
    out[-1] /= 1000
    return out


class _Requests:
    """What the requests of one full label combination add up to."""

    __slots__ = ("count", "duration", "ttft", "routing", "prompt", "completion", "cost")

    def __init__(self) -> None:
        self.count = 0
        self.duration = _histogram(REQUEST_MS)
        self.ttft = _histogram(REQUEST_MS)
        self.routing = _histogram(ROUTING_MS)
        self.prompt = self.completion = 0
        self.cost = 0.0


class _Attempts:
    """What the attempts of one model on one endpoint add up to."""

    __slots__ = ("ok", "failed", "retries", "errors")

    def __init__(self) -> None:
        self.ok = _histogram(REQUEST_MS)
        self.failed = _histogram(REQUEST_MS)
        self.retries = 0
        self.errors: dict[str, int] = {}  # by failure category


class _Signal:
    __slots__ = ("duration", "timeouts", "errors")

    def __init__(self) -> None:
        self.duration = _histogram(ROUTING_MS)
        self.timeouts = self.errors = 0


# Requests are folded in batches: the aggregates and their code stay in the CPU's caches
# through a batch, which costs less than half of folding each request as it ends
# (bench/RESULTS.md, "Metrics"). 256 traces take about half a millisecond to fold.
FOLD_EVERY = 256


class RequestMetrics:
    """The counters and histograms of one worker. ``names``: entrypoints and models, the
    only requested names kept as labels (any other is ``unknown``).

    A request costs an append to a list; folding it in, one dictionary lookup by its whole
    label combination (entrypoint,
    decision, model, endpoint, format, status, error code, stream, key, team); the families
    with fewer labels are sums of those records, made when a snapshot is taken."""

    def __init__(self, names: frozenset[str], by_key: bool = True) -> None:
        self.names = names
        self.by_key = by_key
        self.requests: dict[tuple[Any, ...], _Requests] = {}
        self.attempts: dict[tuple[str, str], _Attempts] = {}
        self.signals: dict[str, _Signal] = {}
        self.fallbacks: dict[tuple[str, str], int] = {}
        self.cache: dict[tuple[str, str, str], int] = {}
        self.pending: list[Trace] = []

    def observe(self, trace: Trace) -> None:
        """Count one finished request: queued, and folded in with the next
        :data:`FOLD_EVERY` (or at the next snapshot)."""
        pending = self.pending
        pending.append(trace)
        if len(pending) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Fold the queued requests into the counters and histograms."""
        add = self._add
        for trace in self.pending:
            add(trace)
        self.pending.clear()

    def _add(self, trace: Trace) -> None:
        requested = trace.requested_model
        entry = requested if requested in self.names else ("unknown" if requested else "")
        route = trace.route
        decision = model = ""
        if route is not None:
            decision, model = route.decision, trace.model or route.model
        key_name = team = ""
        caller = trace.caller
        if caller is not None and self.by_key:
            key_name, team = caller.key_name or "", caller.team or ""
        key = (
            entry,
            decision,
            model,
            trace.upstream or "",
            trace.format,
            trace.status,
            trace.error_code or "",
            trace.stream,
            key_name,
            team,
        )
        series = self.requests.get(key)
        if series is None:
            series = self.requests[key] = _Requests()
        series.count += 1
        # Histograms inline (no call per observation): a bucket count and the sum in ms.
        ms = trace.latency_ms
        if ms is not None:
            h = series.duration
            h[bisect_left(REQUEST_MS, ms)] += 1
            h[-1] += ms
        ms = trace.ttft_ms
        if ms is not None:
            h = series.ttft
            h[bisect_left(REQUEST_MS, ms)] += 1
            h[-1] += ms
        usage = trace.usage
        if usage is not None:
            series.prompt += usage.prompt_tokens
            series.completion += usage.completion_tokens
            series.cost += trace.cost or 0.0
        if route is not None:
            h = series.routing
            ms = route.routing_ms
            h[bisect_left(ROUTING_MS, ms)] += 1
            h[-1] += ms
            if route.signals:
                self._signals(route)
        if trace.attempts:
            self._attempts(trace)
        if trace.cache is not None:
            lookup = (entry, decision, trace.cache)
            self.cache[lookup] = self.cache.get(lookup, 0) + 1

    def _signals(self, route: Route) -> None:
        signals = self.signals
        for result in route.signals.values():
            signal = signals.get(result.name)
            if signal is None:
                signal = signals[result.name] = _Signal()
            h = signal.duration
            ms = result.elapsed_ms
            h[bisect_left(ROUTING_MS, ms)] += 1
            h[-1] += ms
            if result.error is not None:
                if result.timed_out:
                    signal.timeouts += 1
                else:
                    signal.errors += 1

    def _attempts(self, trace: Trace) -> None:
        previous = None
        for attempt in trace.attempts:
            where = (attempt.model, attempt.upstream)
            record = self.attempts.get(where)
            if record is None:
                record = self.attempts[where] = _Attempts()
            ms = attempt.latency_ms
            h = record.ok if attempt.outcome == "ok" else record.failed
            h[bisect_left(REQUEST_MS, ms)] += 1
            h[-1] += ms
            if h is record.failed:
                category = attempt.category or "error"
                record.errors[category] = record.errors.get(category, 0) + 1
            if previous is not None:
                record.retries += 1
                if attempt.model != previous:
                    step = (previous, attempt.model)
                    self.fallbacks[step] = self.fallbacks.get(step, 0) + 1
            previous = attempt.model

    def tables(
        self,
    ) -> tuple[
        dict[str, dict[tuple[str, ...], float]], dict[str, dict[tuple[str, ...], Histogram]]
    ]:
        """Counters and histograms by family and labels, summed from the records."""
        self.fold()
        counters: dict[str, dict[tuple[str, ...], float]] = {
            f.name: {} for f in FAMILIES.values() if f.kind == "counter"
        }
        histograms: dict[str, dict[tuple[str, ...], Histogram]] = {
            f.name: {} for f in FAMILIES.values() if f.kind == "histogram"
        }

        def add(table: dict[tuple[str, ...], float], labels: tuple[str, ...], n: float) -> None:
            table[labels] = table.get(labels, 0) + n

        def merge(
            table: dict[tuple[str, ...], Histogram], labels: tuple[str, ...], h: Histogram
        ) -> None:
            have = table.get(labels)
            if have is None:
                table[labels] = _seconds(h)
            else:
                for i, n in enumerate(_seconds(h)):
                    have[i] += n

        for key, series in self.requests.items():
            entry, decision, model, endpoint, fmt, status, code, stream, key_name, team = key
            where = (entry, decision, model, endpoint)
            add(counters["crossroads_requests"], (*where, fmt, str(status)), series.count)
            if status >= 400:
                add(counters["crossroads_errors"], (*where, str(status), code), series.count)
            status_class = STATUS_CLASS.get(status // 100, "")
            merge(
                histograms["crossroads_request_duration_seconds"],
                (*where, status_class),
                series.duration,
            )
            if any(series.ttft):
                merge(
                    histograms["crossroads_time_to_first_token_seconds"],
                    (*where, STREAM[stream]),
                    series.ttft,
                )
            if decision:
                merge(
                    histograms["crossroads_routing_duration_seconds"],
                    (entry, decision),
                    series.routing,
                )
            if series.prompt or series.completion or series.cost:
                who = (model, key_name, team)
                add(counters["crossroads_tokens"], (*who, "prompt"), series.prompt)
                add(counters["crossroads_tokens"], (*who, "completion"), series.completion)
                add(counters["crossroads_cost_usd"], who, series.cost)
        for (model, endpoint), record in self.attempts.items():
            where2 = (model, endpoint)
            upstream = histograms["crossroads_upstream_duration_seconds"]
            if any(record.ok):
                upstream[(*where2, "ok")] = _seconds(record.ok)
            if any(record.failed):
                upstream[(*where2, "error")] = _seconds(record.failed)
            if record.retries:
                counters["crossroads_retries"][where2] = record.retries
            for category, n in record.errors.items():
                counters["crossroads_upstream_errors"][(*where2, category)] = n
        for name, signal in self.signals.items():
            histograms["crossroads_signal_duration_seconds"][(name,)] = _seconds(signal.duration)
            if signal.timeouts:
                counters["crossroads_signal_errors"][(name, "timeout")] = signal.timeouts
            if signal.errors:
                counters["crossroads_signal_errors"][(name, "error")] = signal.errors
        counters["crossroads_fallbacks"].update(self.fallbacks)
        counters["crossroads_cache_lookups"].update(self.cache)
        return counters, histograms

    def snapshot(self, live: dict[str, dict[tuple[str, ...], float]]) -> dict[str, Any]:
        """This worker's state as JSON-able data, stamped with the time: its counters and
        histograms, and ``live`` values read at this moment (``{family: {labels: value}}``:
        gauges, and counters kept elsewhere, such as the trace writer's)."""
        counter_tables, histogram_tables = self.tables()
        counters: dict[str, list[Any]] = {
            name: [[list(labels), value] for labels, value in table.items()]
            for name, table in counter_tables.items()
        }
        gauges: dict[str, list[Any]] = {}
        for name, table in live.items():
            rows = counters if FAMILIES[name].kind == "counter" else gauges
            rows[name] = [[list(labels), value] for labels, value in table.items()]
        return {
            "written_at": time.time(),
            "counters": counters,
            "histograms": {
                name: [[list(labels), h] for labels, h in table.items()]
                for name, table in histogram_tables.items()
            },
            "gauges": gauges,
        }
