"""An in-process trace store (tests, ``store.traces: memory``), bounded to the newest N."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from crossroads.store.base import (
    TraceQuery,
    TraceStore,
    matches,
    settle_repeat,
    store_stats,
    summary,
)
from crossroads.store.spend import spend_of_traces
from crossroads.types import Feedback, Trace


class MemoryTraceStore(TraceStore):
    """Keeps the newest ``limit`` traces in memory (or none, with ``keep=False``)."""

    def __init__(self, keep: bool = True, limit: int = 100_000) -> None:
        self.keep = keep
        self._traces: deque[Trace] = deque(maxlen=limit)
        self._written = 0
        self._feedback: dict[tuple[str, str], Feedback] = {}

    def record(self, trace: Trace) -> None:
        if self.keep:
            self._traces.append(trace)
            self._written += 1

    def search(self, query: TraceQuery) -> list[dict[str, Any]]:
        rows = (summary(t) for t in reversed(list(self._traces)))
        found = [r for r in rows if matches(r, query)]
        # Appended in arrival order, which is not quite creation order (a long call ends late).
        found.sort(key=lambda r: (r["created_at"], r["trace_id"]), reverse=True)
        return found[: query.limit]

    def get(self, trace_id: str) -> dict[str, Any] | None:
        for t in self._traces:
            if t.trace_id == trace_id:
                return orjson.loads(orjson.dumps(t))  # type: ignore[no-any-return]
        return None

    def count(self) -> int:
        return len(self._traces)

    def spend(
        self, by: Sequence[str], since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        return spend_of_traces(list(self._traces), by, since, until)

    def add_feedback(self, feedback: Feedback) -> tuple[Feedback, bool]:
        key = (feedback.trace_id, feedback.source)
        stored = self._feedback.setdefault(key, feedback)
        if stored is feedback:
            return feedback, True
        return settle_repeat(stored, feedback)

    def feedback(self, trace_id: str) -> list[Feedback]:
        found = [f for (t, _), f in self._feedback.items() if t == trace_id]
        return sorted(found, key=lambda f: f.source)

    def labeled(
        self, since: float | None = None, until: float | None = None
    ) -> list[tuple[dict[str, Any], list[Feedback]]]:
        rated = {t for t, _ in self._feedback}
        traces = sorted(
            (
                t
                for t in self._traces
                if t.trace_id in rated
                and (since is None or t.created_at >= since)
                and (until is None or t.created_at < until)
            ),
            key=lambda t: (t.created_at, t.trace_id),
        )
        return [(orjson.loads(orjson.dumps(t)), self.feedback(t.trace_id)) for t in traces]

    def stats(self) -> dict[str, Any]:
        # Older traces past ``limit`` are forgotten as by retention, not dropped.
        return store_stats(0, self._written, {}, writer_alive=True)
