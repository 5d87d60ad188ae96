"""The trace-store protocol and the factory that picks one from config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from crossroads.paths import data_dir
from crossroads.types import Feedback, Trace

# Why a trace was not stored: the queue was full, it could not be serialised or inserted, the
# database refused the write (locked, full, broken) after retries, or it was still queued when
# the drain at shutdown ran out of time.
DROP_REASONS = ("queue_full", "bad_trace", "write_error", "shutdown")


def trace_json(trace: Trace) -> bytes:
    """The JSON of a trace: ``orjson.dumps(trace)``. The dataclasses a trace is made of keep
    their fields in ``__dict__`` (no ``__slots__``), which orjson reads in C; a slotted one
    costs it an AttributeError built and dropped per object, then a walk of its fields."""
    return orjson.dumps(trace)


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """Which traces :meth:`TraceStore.search` returns: those every set field matches (``None``
    matches all), newest first (``created_at``, then ``trace_id``, both descending)."""

    since: float | None = None  # created_at >= since (unix seconds)
    until: float | None = None  # created_at < until
    model: str | None = None  # the model that answered, else the one routed to
    decision: str | None = None
    status: Literal["ok", "error"] | int | None = None  # ok: below 400; error: 400 and up
    key: str | None = None  # the API key's name (caller.key_name)
    team: str | None = None  # the key's team (caller.team)
    format: str | None = None  # the client's wire format, e.g. "openai_chat"
    trace_id: str | None = None  # a prefix of the trace id
    # (created_at, trace_id) of the last row of the previous page: only older rows follow
    after: tuple[float, str] | None = None
    limit: int = 50
    timeout_s: float = 10.0  # a search running longer raises StoreError


class TraceStore:
    """Keeps traces. :meth:`record` never blocks and never raises: the request path calls it.

    A store implements :meth:`record`, :meth:`get`, :meth:`count`, :meth:`stats` and
    :meth:`search` (the dashboard's listings and aggregates read only through it), and keeps
    feedback beside the traces: :meth:`add_feedback`, :meth:`feedback`, :meth:`labeled`.
    Feedback has no foreign key to its trace: it may be written while the trace is still
    queued for the writer.
    """

    def start(self) -> None:
        """Open connections and background writers."""

    def record(self, trace: Trace) -> None:
        """Queue one trace for writing."""
        raise NotImplementedError

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every queued trace is written (tests, shutdown)."""

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest traces, newest first, as summary rows."""
        return self.search(TraceQuery(limit=limit))

    def search(self, query: TraceQuery) -> list[dict[str, Any]]:
        """Summary rows (:func:`summary`: every key of :data:`SUMMARY_COLUMNS`) of the traces
        ``query`` matches, newest first, at most ``query.limit``. Runs in the caller's thread
        (the gateway calls it off its event loop), and raises :class:`StoreError` rather than
        run past ``query.timeout_s``."""
        raise NotImplementedError

    def get(self, trace_id: str) -> dict[str, Any] | None:
        """The full trace with this id."""
        raise NotImplementedError

    def count(self) -> int:
        """How many traces are stored."""
        raise NotImplementedError

    def spend(
        self, by: Sequence[str], since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Requests, tokens and cost of the traces created in ``[since, until)`` (unix
        seconds), grouped by ``by``: some of ``key``, ``team``, ``model``, ``day`` (UTC)."""
        raise NotImplementedError

    def add_feedback(self, feedback: Feedback) -> tuple[Feedback, bool]:
        """Keep ``feedback``, one per (trace_id, source): the stored feedback and whether it
        is new. A repeat of the stored one returns it (not new); one that differs raises
        :class:`~crossroads.exceptions.ConflictError`. Blocking: call it off the event loop."""
        raise NotImplementedError

    def feedback(self, trace_id: str) -> list[Feedback]:
        """The feedback on one trace, by source."""
        raise NotImplementedError

    def labeled(
        self, since: float | None = None, until: float | None = None
    ) -> list[tuple[dict[str, Any], list[Feedback]]]:
        """The stored traces created in ``[since, until)`` that have feedback, oldest
        first, each with its feedback (by source)."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release resources."""

    def healthy(self) -> bool:
        """Whether the store is accepting traces."""
        return True

    def stats(self) -> dict[str, Any]:
        """Counters since start: see :func:`store_stats`."""
        raise NotImplementedError


def store_stats(
    queued: int, written: int, dropped: dict[str, int], writer_alive: bool
) -> dict[str, Any]:
    """What every store's :meth:`TraceStore.stats` returns: traces waiting to be written,
    written, dropped (in all and by reason, every reason of :data:`DROP_REASONS` present) and
    whether the writer runs."""
    by_reason = {reason: dropped.get(reason, 0) for reason in DROP_REASONS}
    return {
        "queued": queued,
        "written": written,
        "dropped": sum(by_reason.values()),
        "dropped_by_reason": by_reason,
        "writer_alive": writer_alive,
    }


def settle_repeat(stored: Feedback, sent: Feedback) -> tuple[Feedback, bool]:
    """The answer to feedback ``sent`` for a (trace, source) that has ``stored``: the stored
    one when ``sent`` repeats it, else a conflict."""
    from crossroads.feedback import conflict, same_feedback

    if same_feedback(stored, sent):
        return stored, False
    raise conflict(stored)


def open_trace_store(
    spec: str,
    flush_interval_ms: int = 200,
    batch_size: int = 500,
    retention_days: float | None = None,
    max_queue: int = 100_000,
    drain_timeout_s: float = 10.0,
) -> TraceStore:
    """The store for a ``store.traces`` setting: ``sqlite``, ``sqlite:///path``,
    ``postgresql://...``, ``memory``, ``none``, or a plugin's scheme (``STORES`` in :mod:`crossroads.registry`: the part of
    ``spec`` before its first ``:`` names the factory, which gets the whole spec)."""
    from crossroads.registry import STORES

    factory = STORES.get(spec.partition(":")[0])
    store: TraceStore = factory(
        spec,
        flush_interval_ms=flush_interval_ms,
        batch_size=batch_size,
        retention_days=retention_days,
        max_queue=max_queue,
        drain_timeout_s=drain_timeout_s,
    )
    return store


def _memory(spec: str, **settings: Any) -> TraceStore:
    from crossroads.store.memory import MemoryTraceStore

    return MemoryTraceStore(keep=spec == "memory")


def _sqlite(spec: str, **settings: Any) -> TraceStore:
    from crossroads.store.sqlite import SQLiteTraceStore

    # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
    path = data_dir() / "traces.db" if spec == "sqlite" else Path(spec.removeprefix("sqlite:///"))
    return SQLiteTraceStore(path, **settings)


def _postgres(spec: str, **settings: Any) -> TraceStore:
    from crossroads.store.postgres import PostgresTraceStore

    return PostgresTraceStore(spec, **settings)


def _register() -> None:
    from crossroads.registry import STORES

    STORES.register("memory")(_memory)
    STORES.register("none")(_memory)
    STORES.register("sqlite")(_sqlite)
    STORES.register("postgresql")(_postgres)
    STORES.register("postgres")(_postgres)


_register()


SUMMARY_COLUMNS = (
    "trace_id",
    "created_at",
    "requested_model",
    "model",
    "decision",
    "upstream",
    "operation",
    "format",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "estimated_cost",
    "cost",
    "ttft_ms",
    "latency_ms",
    "status",
    "error",
    "key_name",
    "team",
    "candidates",  # the names of the decision's candidate models, in order
)


def summary(trace: Trace) -> dict[str, Any]:
    """A trace's summary row (the keys of :data:`SUMMARY_COLUMNS`)."""
    route = trace.route
    usage = trace.usage
    caller = trace.caller
    return {
        "trace_id": trace.trace_id,
        "created_at": trace.created_at,
        "requested_model": trace.requested_model,
        "model": trace.model or (route.model if route else None),
        "decision": route.decision if route else None,
        "upstream": trace.upstream,
        "operation": trace.operation,
        "format": trace.format,
        "stream": int(trace.stream),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "estimated_cost": route.estimated_cost if route else None,
        "cost": trace.cost,
        "ttft_ms": trace.ttft_ms,
        "latency_ms": trace.latency_ms,
        "status": trace.status,
        "error": trace.error,
        "key_name": caller.key_name if caller else None,
        "team": caller.team if caller else None,
        "candidates": [c.model for c in route.candidates] if route else [],
    }


def matches(row: dict[str, Any], query: TraceQuery) -> bool:
    """Whether a summary row is one ``query`` asks for (for stores that filter in Python)."""
    q = query
    created = row["created_at"]
    status = row["status"]
    return (
        (q.since is None or created >= q.since)
        and (q.until is None or created < q.until)
        and (q.after is None or (created, row["trace_id"]) < q.after)
        and (q.model is None or row["model"] == q.model)
        and (q.decision is None or row["decision"] == q.decision)
        and (
            q.status is None
            or (
                status < 400
                if q.status == "ok"
                else status >= 400
                if q.status == "error"
                else status == q.status
            )
        )
        and (q.key is None or row["key_name"] == q.key)
        and (q.team is None or row["team"] == q.team)
        and (q.format is None or row["format"] == q.format)
        and (q.trace_id is None or row["trace_id"].startswith(q.trace_id))
    )
