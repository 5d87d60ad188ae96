"""Request metrics, aggregated from finished traces in plain Python dictionaries.

:meth:`RequestMetrics.observe` adds one :class:`~crossroads.types.Trace` to the record of its
label combination: a row of its times, tokens and cost, and its signal and attempt times in
lists; rows and times are folded into sums and histograms 256 requests at a
time (a sort and a few searches per series instead of a bucket search per time). That is
about 10,000 instructions a request, against 110,000 through prometheus-client's own metric
objects with every label child cached (bench/RESULTS.md, "Metrics").
:meth:`RequestMetrics.snapshot` is the JSON-able state that workers exchange and
:mod:`crossroads.observe.exposition` renders.

Every label value comes from the config (entrypoints, decisions, models, endpoints, signals,
API key and team names) or from a small fixed set (statuses, formats, failure categories):
nothing a client writes becomes a label, so the number of series is bounded by the config.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from crossroads.types import Attempt, RecordedCaller, Route, SignalResult, Trace, Usage

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


def _bucket(h: Histogram, bounds: tuple[float, ...], values: Sequence[float | None]) -> None:
    """Add ``values`` (ms; None: not observed) to ``h``: sorted once (a float sort compares
    fast, unlike ``min`` and ``max``), then one search per bucket boundary they span (most
    values of a series fall into a few buckets). That costs less than a search per value."""
    try:
        ordered = sorted(values)  # type: ignore[type-var]
    except TypeError:  # None among them (sorting compares every value)
        ordered = sorted(v for v in values if v is not None)
    if not ordered or ordered[0] is None:
        return
    h[-1] += sum(ordered)
    lo, hi = bisect_left(bounds, ordered[0]), bisect_left(bounds, ordered[-1])
    start = 0
    for i in range(lo, hi):
        end = bisect_right(ordered, bounds[i], start)
        h[i] += end - start
        start = end
    h[hi] += len(ordered) - start


def _total(values: Sequence[float | None]) -> float:
    try:
        return sum(values)  # type: ignore[arg-type]
    except TypeError:
        return sum(v for v in values if v is not None)


class _Requests:
    """What the requests of one full label combination add up to. Each request adds a row
    (duration, time to first token, routing time, prompt and completion tokens, cost),
    folded into the sums and histograms a batch at a time."""

    __slots__ = ("count", "duration", "ttft", "routing", "prompt", "completion", "cost", "rows")

    def __init__(self) -> None:
        self.count = 0
        self.duration = _histogram(REQUEST_MS)
        self.ttft = _histogram(REQUEST_MS)
        self.routing = _histogram(ROUTING_MS)
        self.prompt = self.completion = 0
        self.cost = 0.0
        self.rows: list[tuple[Any, ...]] = []

    def fold(self) -> None:
        rows = self.rows
        if not rows:
            return
        self.count += len(rows)
        duration, ttft, routing, prompt, completion, cost = zip(*rows, strict=True)
        rows.clear()
        _bucket(self.duration, REQUEST_MS, duration)
        _bucket(self.ttft, REQUEST_MS, ttft)
        _bucket(self.routing, ROUTING_MS, routing)
        self.prompt += sum(prompt)
        self.completion += sum(completion)
        self.cost += _total(cost)


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


# Requests wait as rows, and times as list items, until this many wait in all (at least 16
# a series): an append a request instead of a bucket search a time. 256 costs the least
# (sorting grows with the batch, the fixed cost of a fold shrinks; bench/RESULTS.md, "Metrics").
FOLD_EVERY = 256
# Stand-ins for a request that ended before routing, a caller not counted, an answer
# without usage: the request path reads them like the real ones, without a branch.
_NO_ROUTE = Route(model="", decision="", selection="", routing_ms=None)  # type: ignore[arg-type]
_NO_CALLER = RecordedCaller()
_NO_USAGE = Usage()


class RequestMetrics:
    """The counters and histograms of one worker. ``names``: entrypoints and models, the
    only requested names kept as labels (any other is ``unknown``).

    A request costs one dictionary lookup by its whole label combination (entrypoint,
    decision, model, endpoint, format, status, error code, stream, key, team), a row
    appended to that record, and a list append per signal and upstream attempt; the
    families with fewer labels are sums of those records, made when a snapshot is taken."""

    def __init__(self, names: frozenset[str], by_key: bool = True) -> None:
        self.names = names
        self.by_key = by_key
        self.requests: dict[tuple[Any, ...], _Requests] = {}
        self.attempts: dict[tuple[str, str], _Attempts] = {}
        self.signals: dict[str, _Signal] = {}
        self.fallbacks: dict[tuple[str, str], int] = {}
        self.cache: dict[tuple[str, str, str], int] = {}
        self.fold_at = FOLD_EVERY  # rows of one series that start a fold
        self._ok_ms: dict[tuple[str, str], list[float]] = {}  # of attempts, unfolded
        self._failed_ms: dict[tuple[str, str], list[float]] = {}
        self._signal_ms: dict[str, list[float]] = {}
        self._entries = {"": "", **{name: name for name in names}}  # requested -> label

    def label_names(self, names: frozenset[str]) -> None:
        """Keep these entrypoints and models as labels from now on (a reloaded config)."""
        self.names = names
        self._entries = {"": "", **{name: name for name in names}}

    def observe(self, trace: Trace) -> None:
        """Count one finished request."""
        entry = self._entries.get(trace.requested_model, "unknown")
        route = trace.route or _NO_ROUTE
        caller = (self.by_key and trace.caller) or _NO_CALLER
        usage = trace.usage or _NO_USAGE
        key = (
            entry,
            route.decision,
            trace.model or route.model,
            trace.upstream,
            trace.format,
            trace.status,
            trace.error_code,
            trace.stream,
            caller.key_name,
            caller.team,
        )
        try:
            rows = self.requests[key].rows
        except KeyError:
            rows = self._series(key).rows
        rows.append(
            (
                trace.latency_ms,
                trace.ttft_ms,
                route.routing_ms,
                usage.prompt_tokens,
                usage.completion_tokens,
                trace.cost,
            )
        )
        signal_ms = self._signal_ms
        for result in route.signals.values():
            try:
                signal_ms[result.name].append(result.elapsed_ms)
            except KeyError:
                signal_ms[result.name] = [result.elapsed_ms]
            if result.error is not None:
                self._signal_failed(result)
        attempts = trace.attempts
        if len(attempts) == 1 and (attempt := attempts[0]).outcome == "ok":
            where = (attempt.model, attempt.upstream)
            try:
                self._ok_ms[where].append(attempt.latency_ms)
            except KeyError:
                self._ok_ms[where] = [attempt.latency_ms]
        elif attempts:
            self._attempts(attempts)
        if trace.cache is not None:
            lookup = (entry, route.decision, trace.cache)
            self.cache[lookup] = self.cache.get(lookup, 0) + 1
        if len(rows) >= self.fold_at:
            self.fold()

    def _series(self, key: tuple[Any, ...]) -> _Requests:
        series = self.requests[key] = _Requests()
        self.fold_at = max(16, FOLD_EVERY // len(self.requests))
        return series

    def _signal_failed(self, result: SignalResult) -> None:
        signal = self.signals.get(result.name) or self.signals.setdefault(result.name, _Signal())
        if result.timed_out:
            signal.timeouts += 1
        else:
            signal.errors += 1

    def _attempts(self, attempts: list[Attempt]) -> None:
        previous = None
        for attempt in attempts:
            where = (attempt.model, attempt.upstream)
            times = self._ok_ms if attempt.outcome == "ok" else self._failed_ms
            times.setdefault(where, []).append(attempt.latency_ms)
            if attempt.outcome != "ok":
                errors = self._attempt(where).errors
                category = attempt.category or "error"
                errors[category] = errors.get(category, 0) + 1
            if previous is not None:
                self._attempt(where).retries += 1
                if attempt.model != previous:
                    step = (previous, attempt.model)
                    self.fallbacks[step] = self.fallbacks.get(step, 0) + 1
            previous = attempt.model

    def _attempt(self, where: tuple[str, str]) -> _Attempts:
        return self.attempts.get(where) or self.attempts.setdefault(where, _Attempts())

    def fold(self) -> None:
        """Fold the waiting rows and times into the sums and histograms."""
        for series in self.requests.values():
            series.fold()
        for name, times in self._signal_ms.items():
            if times:
                signal = self.signals.get(name) or self.signals.setdefault(name, _Signal())
                _bucket(signal.duration, ROUTING_MS, times)
                times.clear()
        for waiting, outcome in ((self._ok_ms, "ok"), (self._failed_ms, "failed")):
            for where, times in waiting.items():
                if times:
                    _bucket(getattr(self._attempt(where), outcome), REQUEST_MS, times)
                    times.clear()

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
            # the request path keeps None where a label reads "" (no endpoint, code, key)
            endpoint, code, key_name, team = endpoint or "", code or "", key_name or "", team or ""
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
