"""The search contract every trace store keeps (memory, SQLite and PostgreSQL here; plugins
run the same cases): filters, order, pages, bounds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crossroads.exceptions import ConflictError, StoreError
from crossroads.store.base import TraceQuery, TraceStore, trace_json
from crossroads.store.memory import MemoryTraceStore
from crossroads.store.postgres import PostgresTraceStore
from crossroads.store.sqlite import SQLiteTraceStore
from crossroads.types import (
    Attempt,
    Candidate,
    Feedback,
    RateWindow,
    RecordedCaller,
    Reservation,
    Route,
    SignalResult,
    StageCall,
    Trace,
    Usage,
)

T0 = 1_700_000_000.0


def trace(i: int, **changes: object) -> Trace:
    """Trace ``i``: created at T0 + i; every third is coding on big, every fourth failed;
    keys alternate between a (team search) and b (no team)."""
    coding = i % 3 == 0
    t = Trace(
        trace_id=f"t{i:04d}",
        created_at=T0 + i,
        requested_model="auto",
        operation="chat",
        stream=False,
        format="anthropic_messages" if i % 5 == 0 else "openai_chat",
        route=Route(
            model="big" if coding else "small",
            decision="coding" if coding else "default",
            selection="first",
            candidates=[Candidate("big", 0.2)]
            if coding
            else [Candidate("small"), Candidate("big")],
        ),
        usage=Usage(10, 5),
        cost=0.001,
        status=502 if i % 4 == 0 else 200,
        caller=RecordedCaller(key_name="a", team="search")
        if i % 2
        else RecordedCaller(key_name="b"),
    )
    for name, value in changes.items():
        setattr(t, name, value)
    return t


TRACES = [trace(i) for i in range(1, 41)]


def ids(rows: list[dict[str, object]]) -> list[str]:
    return [str(r["trace_id"]) for r in rows]


def expected(keep: object) -> list[str]:
    return [t.trace_id for t in sorted(TRACES, key=lambda t: -t.created_at) if keep(t)]  # type: ignore[operator]


def new_store(kind: str, request: pytest.FixtureRequest, path: Path) -> TraceStore:
    """An empty store of ``kind``: memory, a SQLite file at ``path``, or PostgreSQL in a
    fresh schema."""
    if kind == "memory":
        return MemoryTraceStore()
    if kind == "sqlite":
        return SQLiteTraceStore(path, flush_interval_ms=5)
    return PostgresTraceStore(request.getfixturevalue("postgres_url"), flush_interval_ms=5)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TraceStore]:
    made = new_store(request.param, request, tmp_path / "t.db")
    made.start()
    for t in reversed(TRACES):  # written out of order: the order comes from created_at
        made.record(t)
    made.flush()
    yield made
    made.close()


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        (TraceQuery(limit=100), lambda t: True),
        (TraceQuery(model="big", limit=100), lambda t: t.route.model == "big"),
        (TraceQuery(decision="coding", limit=100), lambda t: t.route.decision == "coding"),
        (TraceQuery(status="error", limit=100), lambda t: t.status >= 400),
        (TraceQuery(status="ok", limit=100), lambda t: t.status < 400),
        (TraceQuery(status=502, limit=100), lambda t: t.status == 502),
        (TraceQuery(key="b", limit=100), lambda t: t.caller.key_name == "b"),
        (TraceQuery(team="search", limit=100), lambda t: t.caller.team == "search"),
        (
            TraceQuery(format="anthropic_messages", limit=100),
            lambda t: t.format == "anthropic_messages",
        ),
        (TraceQuery(trace_id="t001", limit=100), lambda t: t.trace_id.startswith("t001")),
        (
            TraceQuery(since=T0 + 10, until=T0 + 20, limit=100),
            lambda t: T0 + 10 <= t.created_at < T0 + 20,
        ),
        (
            TraceQuery(since=T0 + 5, decision="default", status="ok", key="a", limit=100),
            lambda t: (
                t.created_at >= T0 + 5
                and t.route.decision == "default"
                and t.status < 400
                and t.caller.key_name == "a"
            ),
        ),
        (TraceQuery(limit=3), lambda t: t.created_at > T0 + 37),
    ],
)
def test_search_filters_and_orders(store: TraceStore, query: TraceQuery, keep: object) -> None:
    assert ids(store.search(query)) == expected(keep)


def test_rows_carry_the_caller_and_the_candidates(store: TraceStore) -> None:
    (row,) = store.search(TraceQuery(trace_id="t0003"))
    assert (row["key_name"], row["team"], row["candidates"]) == ("a", "search", ["big"])
    (row,) = store.search(TraceQuery(trace_id="t0004"))
    assert (row["key_name"], row["team"], row["candidates"]) == ("b", None, ["small", "big"])


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_pages_follow_each_other_without_gaps_even_on_equal_times(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for made in (new_store(kind, request, tmp_path / "ties.db"),):
        made.start()
        same = [trace(i, created_at=T0) for i in range(1, 8)] + [trace(8)]
        for t in same:
            made.record(t)
        made.flush()
        seen: list[str] = []
        after = None
        while True:
            page = made.search(TraceQuery(after=after, limit=3))
            if not page:
                break
            seen += ids(page)
            after = (page[-1]["created_at"], page[-1]["trace_id"])
        assert seen == ["t0008", *[f"t{i:04d}" for i in range(7, 0, -1)]]
        made.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_search_past_its_time_bound_is_a_store_error(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = new_store(kind, request, tmp_path / "t.db")
    store.start()
    for i in range(10_000):
        store.record(trace(i + 1000))
    store.flush()
    with pytest.raises(StoreError, match="took longer than"):
        store.search(TraceQuery(model="nothing-matches", limit=10, timeout_s=1e-9))
    assert len(store.search(TraceQuery(limit=10))) == 10
    store.close()


def test_trace_json_writes_what_orjson_writes_for_every_part_of_a_trace() -> None:
    import orjson

    full = trace(3)
    assert full.route is not None
    full.route.signals = {"keyword:k": SignalResult("keyword:k", True, 2, "keywords[0]", 0.01)}
    full.attempts = [Attempt("big", "up/0", "error", 1.5, "boom", 502, 0.1, "http_502", "s1")]
    full.stages = [StageCall(0, "small", "rejected", 2.0, Usage(1, 2), 0.1, "low", 0.4, "up")]
    full.reservation = Reservation("h1", "big", 0.2, ["team:a/day"], ["k"], 1.0)
    full.rate_limits = [RateWindow("key:a", "requests", 10, 9, 30.0)]
    full.error = "caf\u00e9 \x00"
    for t in (full, trace(4), trace(5, route=None, caller=None, usage=None)):
        assert trace_json(t) == orjson.dumps(t)
    with pytest.raises(TypeError):  # orjson.JSONEncodeError: the writer drops it as bad
        trace_json(trace(6, route=object()))


def test_the_types_a_trace_is_made_of_are_not_slotted() -> None:
    """orjson encodes a dataclass with a ``__dict__`` in C, a slotted one for about twice the
    instructions: the request path encodes every trace (bench/RESULTS.md)."""
    from crossroads import types

    parts = (
        types.Trace,
        types.Route,
        types.SignalResult,
        types.Candidate,
        types.ShadowChoice,
        types.Usage,
        types.Attempt,
        types.RecordedCaller,
        types.StageCall,
        types.Reservation,
        types.RateWindow,
    )
    assert [cls.__name__ for cls in parts if "__slots__" in vars(cls)] == []


# ---------------------------------------------------------------------- feedback


def feedback(
    trace_id: str, reward: float = 1.0, source: str = "client", **changes: object
) -> Feedback:
    return Feedback(trace_id, reward, source, created_at=T0 + 100, **changes)  # type: ignore[arg-type]


def test_feedback_is_kept_once_per_trace_and_source(store: TraceStore) -> None:
    sent = feedback("t0003", 0.5, comment="half right", metadata={"step": 2})
    assert store.add_feedback(sent) == (sent, True)
    again = feedback("t0003", 0.5, comment="half right", metadata={"step": 2}, key_name="other")
    assert store.add_feedback(again) == (sent, False)  # a repeat: the first one answers
    grader = feedback("t0003", 0.0, source="grader")
    assert store.add_feedback(grader) == (grader, True)
    assert [(f.source, f.reward, f.comment) for f in store.feedback("t0003")] == [
        ("client", 0.5, "half right"),
        ("grader", 0.0, None),
    ]
    assert store.feedback("t0004") == []


@pytest.mark.parametrize(
    "changes", [{"reward": 0.25}, {"comment": "other"}, {"metadata": {"step": 3}}]
)
def test_a_conflicting_repeat_is_refused_and_the_first_kept(
    store: TraceStore, changes: dict[str, object]
) -> None:
    first = feedback("t0005", 0.5, comment="c", metadata={"step": 2})
    store.add_feedback(first)
    fields = {"reward": 0.5, "comment": "c", "metadata": {"step": 2}} | changes
    with pytest.raises(ConflictError, match="already has feedback from source 'client'"):
        store.add_feedback(feedback("t0005", **fields))  # type: ignore[arg-type]
    assert store.feedback("t0005") == [first]


def test_labeled_traces_come_oldest_first_with_their_feedback(store: TraceStore) -> None:
    for trace_id, source in (("t0009", "client"), ("t0002", "client"), ("t0009", "grader")):
        store.add_feedback(feedback(trace_id, source=source))
    store.add_feedback(feedback("missing"))  # no such trace: not a labeled trace
    found = store.labeled()
    assert [(t["trace_id"], [f.source for f in fs]) for t, fs in found] == [
        ("t0002", ["client"]),
        ("t0009", ["client", "grader"]),
    ]
    assert found[0][0]["route"]["decision"] == "default"
    assert [t["trace_id"] for t, _ in store.labeled(since=T0 + 3, until=T0 + 10)] == ["t0009"]
