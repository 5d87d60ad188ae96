"""The trace-store protocol and the factory that picks one from config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossroads.paths import data_dir
from crossroads.types import Trace

# Why a trace was not stored: the queue was full, it could not be serialised or inserted, the
# database refused the write (locked, full, broken) after retries, or it was still queued when
# the drain at shutdown ran out of time.
DROP_REASONS = ("queue_full", "bad_trace", "write_error", "shutdown")


class TraceStore:
    """Keeps traces. :meth:`record` never blocks and never raises: the request path calls it."""

    def start(self) -> None:
        """Open connections and background writers."""

    def record(self, trace: Trace) -> None:
        """Queue one trace for writing."""
        raise NotImplementedError

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every queued trace is written (tests, shutdown)."""

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest traces, newest first, as summary rows."""
        raise NotImplementedError

    def get(self, trace_id: str) -> dict[str, Any] | None:
        """The full trace with this id."""
        raise NotImplementedError

    def count(self) -> int:
        """How many traces are stored."""
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


def open_trace_store(
    spec: str,
    flush_interval_ms: int = 200,
    batch_size: int = 500,
    retention_days: float | None = None,
    max_queue: int = 100_000,
    drain_timeout_s: float = 10.0,
) -> TraceStore:
    """The store for a ``store.traces`` setting: ``sqlite``, ``sqlite:///path``, ``memory``,
    ``none``, or a plugin's scheme (``STORES`` in :mod:`crossroads.registry`: the part of
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


def _register() -> None:
    from crossroads.registry import STORES

    STORES.register("memory")(_memory)
    STORES.register("none")(_memory)
    STORES.register("sqlite")(_sqlite)


_register()


def summary(trace: Trace) -> dict[str, Any]:
    """The columns every store indexes, from a trace."""
    route = trace.route
    usage = trace.usage
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
    }
