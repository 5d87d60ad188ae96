"""The contract of every database trace store (the shared batched writer), run against SQLite
and PostgreSQL: batching, round trips, summaries, spend, retention, bounded queue, faults."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crossroads.exceptions import InvalidRequestError, StoreError
from crossroads.store import batched, postgres, sqlite
from crossroads.store.base import summary
from crossroads.store.batched import BatchedTraceStore
from crossroads.store.memory import MemoryTraceStore
from crossroads.types import Caller, Candidate, Feedback, RecordedCaller, Route, Trace, Usage


def trace(i: int) -> Trace:
    return Trace(
        trace_id=f"t{i:05d}",
        created_at=1_700_000_000 + i,
        requested_model="auto",
        operation="chat",
        stream=False,
        route=Route(model="small", decision="default", selection="first"),
        usage=Usage(10, 5),
        cost=0.001,
        latency_ms=1.5,
    )


@dataclass
class Backend:
    """How to make a store of one kind and how to hold its database's write lock."""

    name: str
    make: Callable[..., BatchedTraceStore]
    lock: Callable[[], contextlib.AbstractContextManager[None]]
    refused: Callable[[Trace], None]  # spoils a trace so that this database refuses its row
    lock_words: str  # what the error of a write that waited for the lock says


def huge_created_at(t: Trace) -> None:
    t.created_at = 10**30  # the sqlite3 driver: OverflowError binding the parameter


def nul_trace_id(t: Trace) -> None:
    t.trace_id += "\x00"  # PostgreSQL text holds no NUL byte (psycopg: DataError)


def sqlite_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    path = tmp_path / "t.db"

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        blocker = sqlite3.connect(path, timeout=5, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.rollback()
            blocker.close()

    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_S", 0.3)
    return Backend(
        "sqlite", lambda **kw: sqlite.SQLiteTraceStore(path, **kw), lock, huge_created_at, "locked"
    )


def postgres_backend(url: str, monkeypatch: pytest.MonkeyPatch) -> Backend:
    import psycopg

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        postgres.PostgresTraceStore(url)._connect().close()  # the table exists
        with psycopg.connect(url) as blocker:
            blocker.execute("LOCK TABLE crossroads_traces IN ACCESS EXCLUSIVE MODE")
            yield
            blocker.rollback()

    # A write blocked by the lock gives up after 0.3 s (as SQLite's busy wait does).
    monkeypatch.setattr(postgres, "STATEMENT_TIMEOUT_MS", 300)
    monkeypatch.setattr(postgres.PostgresTraceStore, "call_timeout_s", 0.3)
    return Backend(
        "postgresql",
        lambda **kw: postgres.PostgresTraceStore(url, **kw),
        lock,
        nul_trace_id,
        "statement timeout",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    if request.param == "sqlite":
        return sqlite_backend(tmp_path, monkeypatch)
    return postgres_backend(request.getfixturevalue("postgres_url"), monkeypatch)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short backoffs: a locked or full database gives up in about a second."""
    monkeypatch.setattr(batched, "BACKOFF_S", (0.01, 0.02))


def test_batched_writes_from_many_threads_keep_every_trace(backend: Backend) -> None:
    store = backend.make(flush_interval_ms=5, batch_size=64)
    store.start()
    threads = [
        threading.Thread(target=lambda k=k: [store.record(trace(k * 250 + i)) for i in range(250)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.flush()
    store.close()
    assert backend.make().count() == 1000
    assert store.stats()["written"] == 1000


def test_recent_and_get_round_trip(backend: Backend) -> None:
    store = backend.make(flush_interval_ms=5)
    for i in range(3):
        store.record(trace(i))
    store.flush()
    assert [r["trace_id"] for r in store.recent(2)] == ["t00002", "t00001"]
    full = store.get("t00001")
    assert full is not None
    assert full["route"]["decision"] == "default" and full["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "estimated": False,
    }
    assert store.get("missing") is None
    store.close()


def test_a_queued_trace_is_found_and_takes_feedback_before_it_is_written(
    backend: Backend,
) -> None:
    store = backend.make(flush_interval_ms=60_000)  # the writer sleeps: traces stay queued
    store.start()
    store.record(trace(1))
    assert store.stats()["written"] == 0
    found = store.get("t00001")
    assert found is not None and found["route"]["decision"] == "default"
    sent = Feedback("t00001", 1.0, created_at=1_700_000_100)
    assert store.add_feedback(sent) == (sent, True)
    assert store.labeled() == []  # the trace is not written yet
    store.close()  # drains the queue
    assert store.stats()["written"] == 1
    assert [(t["trace_id"], fs) for t, fs in store.labeled()] == [("t00001", [sent])]


def test_a_trace_in_the_batch_being_written_is_found(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.make(flush_interval_ms=5)
    writing = threading.Event()
    release = threading.Event()
    insert = store._insert_rows

    def slow_insert(conn: Any, rows: list[Any]) -> None:
        writing.set()
        release.wait(10)
        insert(conn, rows)

    monkeypatch.setattr(store, "_insert_rows", slow_insert)
    store.record(trace(2))
    assert writing.wait(10)  # out of the queue, not yet in the table
    assert store.stats()["queued"] == 1
    found = store.get("t00002")
    release.set()
    assert found is not None and found["trace_id"] == "t00002"
    store.flush()
    assert store.get("t00002") == found
    store.close()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"model": "big", "upstream": "fake/0", "ttft_ms": 3.25, "stream": True, "status": 200},
        {"route": None, "usage": None, "cost": None, "status": 400, "error": "bad 'input' \"x\""},
        {
            "caller": RecordedCaller(key_name="ci", team="search", user="u1"),
            "route": Route(
                model="big",
                decision="coding",
                selection="first",
                candidates=[Candidate("big", 0.5), Candidate("small", 0.1, False, "lacks tools")],
            ),
        },
    ],
)
def test_summary_columns_match_the_trace(backend: Backend, changes: dict[str, Any]) -> None:
    """The columns the database extracts from each trace's JSON equal the Python summary."""
    store = backend.make(flush_interval_ms=5)
    t = trace(7)
    for name, value in changes.items():
        setattr(t, name, value)
    if t.route is not None:
        t.route.estimated_cost = 0.0125
    store.record(t)
    store.flush()
    (row,) = store.recent(1)
    assert row == summary(t)
    store.close()


def spend_traces() -> list[Trace]:
    day = 86400
    rows = [  # (day, key, team, model, prompt, completion, cost)
        (0, "ci", "search", "small", 10, 5, 0.5),
        (0, "ci", "search", "big", 100, 50, 2.0),
        (0, "bot", "search", "small", 1, 1, 0.25),
        (1, "ci", "search", "small", 20, 10, 1.0),
        (1, None, None, "small", 3, 3, None),
    ]
    traces = []
    for i, (d, key, team, model, p, c, cost) in enumerate(rows):
        t = trace(i)
        t.created_at = 1_700_006_400 + d * day + i  # 2023-11-15 00:00 UTC onwards
        t.caller = Caller(key_name=key, team=team)
        t.route = Route(model=model, decision="default", selection="first")
        t.usage, t.cost = Usage(p, c), cost
        traces.append(t)
    return traces


@pytest.mark.parametrize(
    ("by", "since", "expected"),
    [
        (["team"], None, [{"team": "search", "requests": 4, "cost": 3.75}, {"team": None}]),
        (
            ["day", "key"],
            None,
            [
                {"day": "2023-11-15", "key": "bot", "requests": 1, "prompt_tokens": 1},
                {"day": "2023-11-15", "key": "ci", "requests": 2, "prompt_tokens": 110},
                {"day": "2023-11-16", "key": "ci", "completion_tokens": 10, "cost": 1.0},
                {"day": "2023-11-16", "key": None, "cost": 0},
            ],
        ),
        (["model"], 1_700_006_400 + 86400, [{"model": "small", "requests": 2, "cost": 1.0}]),
    ],
)
def test_spend_groups_by_key_team_model_and_day(
    backend: Backend, by: list[str], since: float | None, expected: list[dict[str, Any]]
) -> None:
    store = backend.make(flush_interval_ms=5)
    memory = MemoryTraceStore()
    for t in spend_traces():
        store.record(t)
        memory.record(t)
    store.flush()
    rows = store.spend(by, since=since)
    assert [{k: row[k] for k in want} for row, want in zip(rows, expected, strict=True)] == expected
    assert rows == memory.spend(by, since=since)  # the database and Python agree
    with pytest.raises(InvalidRequestError, match="cannot group spend by user"):
        store.spend(["user"])
    store.close()


def test_close_flushes_what_is_queued(backend: Backend) -> None:
    store = backend.make(flush_interval_ms=10_000)
    for i in range(10):
        store.record(trace(i))
    store.close()
    assert backend.make().count() == 10


def test_traces_past_the_retention_are_deleted(backend: Backend) -> None:
    old_store = backend.make(flush_interval_ms=5)
    now = time.time()
    for i, age_days in enumerate([40, 31, 29, 1]):
        t = trace(i)
        t.created_at = now - age_days * 86400
        old_store.record(t)
    old_store.flush()
    old_store.close()
    assert old_store.count() == 4
    store = backend.make(flush_interval_ms=5, retention_days=30)
    store.start()
    wait_for(lambda: store.count() <= 2, timeout=5)
    assert sorted(r["trace_id"] for r in store.recent(10)) == ["t00002", "t00003"]
    store.close()


# ---------------------------------------------------------------- faults: nothing kills the writer


def big_usage(t: Trace) -> None:
    t.usage = Usage(10**30, 5)  # orjson: "Integer exceeds 64-bit range" (a TypeError)


def unserialisable(t: Trace) -> None:
    t.route = object()  # type: ignore[assignment]


@pytest.mark.parametrize("spoil", ["big_usage", "refused", "unserialisable"])
def test_a_bad_trace_costs_only_itself(
    backend: Backend, spoil: str, caplog: pytest.LogCaptureFixture
) -> None:
    spoiler = backend.refused if spoil == "refused" else globals()[spoil]
    store = backend.make(flush_interval_ms=50)
    store.start()
    bad = [trace(i) for i in range(1, 40, 2)]
    for t in bad:
        spoiler(t)
    # good and bad traces in the same batches
    for i in range(40):
        store.record(bad[i // 2] if i % 2 else trace(i))
    store.flush(timeout=5)
    assert store.count() == 20
    store.record(trace(100))  # the writer is still running
    store.flush(timeout=5)
    assert store.get("t00100") is not None
    stats = store.stats()
    assert stats["written"] == 21 and stats["queued"] == 0 and stats["writer_alive"]
    assert stats["dropped"] == 20 and stats["dropped_by_reason"]["bad_trace"] == 20
    assert store.healthy()
    errors = [r for r in caplog.records if r.name == "crossroads.store" and r.levelname == "ERROR"]
    assert len(errors) == 1 and "t00001" in errors[0].getMessage()  # once, rate limited
    store.close()


def test_a_dead_writer_is_unhealthy(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("the writer cannot start")

    monkeypatch.setattr(batched, "_lower_priority", broken)
    store = backend.make(flush_interval_ms=5)
    store.start()
    wait_for(lambda: not store._thread.is_alive())  # type: ignore[union-attr]
    assert not store.healthy()
    assert store.stats()["writer_alive"] is False
    store.record(trace(1))
    started = time.monotonic()
    with pytest.raises(StoreError, match="not running"):
        store.flush(timeout=30)
    assert time.monotonic() - started < 5
    store.close()


def test_the_queue_is_bounded(backend: Backend) -> None:
    store = backend.make(flush_interval_ms=60_000, max_queue=10)
    store.start()  # the writer sleeps for a minute: nothing leaves the queue
    for i in range(15):
        store.record(trace(i))
    stats = store.stats()
    assert stats["queued"] == 10
    assert stats["dropped"] == 5 and stats["dropped_by_reason"]["queue_full"] == 5
    store.close()
    assert store.count() == 10
    assert store.stats()["written"] == 10


def test_record_never_blocks_while_the_database_is_locked(backend: Backend) -> None:
    store = backend.make(flush_interval_ms=5)
    store.start()
    with backend.lock():  # the writer thread must wait
        started = time.perf_counter()
        for i in range(100):
            store.record(trace(i))
        assert time.perf_counter() - started < 1.0  # enqueueing only; generous bound
    store.flush(timeout=60)
    assert store.stats()["written"] + store.stats()["dropped"] == 100
    store.close()


def test_a_locked_database_drops_after_bounded_retries_then_recovers(
    backend: Backend, quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.make(flush_interval_ms=5)
    store.start()
    with backend.lock():
        for i in range(5):
            store.record(trace(i))
        wait_for(lambda: store.stats()["dropped_by_reason"]["write_error"] == 5)
        assert store.stats()["writer_alive"] and store.stats()["queued"] == 0
    (error,) = [r for r in caplog.records if r.name == "crossroads.store"]
    assert "dropped" in error.getMessage() and backend.lock_words in error.getMessage()
    store.record(trace(10))
    store.flush(timeout=5)
    assert [r["trace_id"] for r in store.recent()] == ["t00010"]
    assert store.stats()["written"] == 1 and store.stats()["dropped"] == 5
    store.close()


def test_close_drains_within_its_bound(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    store = backend.make(flush_interval_ms=60_000, batch_size=5, drain_timeout_s=0.2)
    assert store.call_timeout_s > 0.2  # the first write waits longer than the drain may take
    store.start()
    with backend.lock():  # nothing can be written before the bound passes
        for i in range(20):
            store.record(trace(i))
        started = time.monotonic()
        store.close()
        assert time.monotonic() - started < 5
    stats = store.stats()
    assert stats["written"] == 0 and stats["queued"] == 0
    assert stats["dropped"] == 20 and stats["dropped_by_reason"]["shutdown"] == 20
    assert any("20 traces" in r.getMessage() for r in caplog.records)
    assert store.count() == 0
