from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from crossroads.store import open_trace_store
from crossroads.store.base import summary
from crossroads.store.sqlite import SQLiteTraceStore
from crossroads.types import Route, Trace, Usage


def trace(i: int) -> Trace:
    return Trace(
        trace_id=f"t{i:05d}",
        created_at=1_700_000_000 + i,
        requested_model="auto",
        endpoint="chat",
        stream=False,
        route=Route(model="small", decision="default", selection="first"),
        usage=Usage(10, 5),
        cost=0.001,
        latency_ms=1.5,
    )


def test_batched_writes_from_many_threads_keep_every_trace(tmp_path: Path) -> None:
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=5, batch_size=64)
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
    assert store.count() == 1000
    store.close()
    rows = (
        sqlite3.connect(tmp_path / "t.db")
        .execute("SELECT COUNT(DISTINCT trace_id) FROM traces")
        .fetchone()
    )
    assert rows == (1000,)


def test_recent_and_get_round_trip(tmp_path: Path) -> None:
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=5)
    for i in range(3):
        store.record(trace(i))
    store.flush()
    assert [r["trace_id"] for r in store.recent(2)] == ["t00002", "t00001"]
    full = store.get("t00001")
    assert full["route"]["decision"] == "default" and full["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "estimated": False,
    }
    assert store.get("missing") is None
    store.close()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"model": "big", "upstream": "fake/0", "ttft_ms": 3.25, "stream": True, "status": 200},
        {"route": None, "usage": None, "cost": None, "status": 400, "error": "bad 'input' \"x\""},
    ],
)
def test_summary_columns_match_the_trace(tmp_path: Path, changes: dict) -> None:
    """The columns SQLite extracts from each trace's JSON equal the Python summary."""
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=5)
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


def test_record_never_blocks_while_the_database_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLiteTraceStore(path, flush_interval_ms=5)
    store.start()
    blocker = sqlite3.connect(path, timeout=5, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the writer thread must wait
    started = time.perf_counter()
    for i in range(100):
        store.record(trace(i))
    assert time.perf_counter() - started < 1.0  # enqueueing only; generous bound for slow CI
    blocker.rollback()
    blocker.close()
    store.flush(timeout=60)
    assert store.count() == 100
    store.close()


def test_close_flushes_what_is_queued(tmp_path: Path) -> None:
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=10_000)
    for i in range(10):
        store.record(trace(i))
    store.close()
    assert SQLiteTraceStore(tmp_path / "t.db").count() == 10


def test_store_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(tmp_path / "data"))
    assert open_trace_store("sqlite").path == tmp_path / "data" / "traces.db"
    assert open_trace_store(f"sqlite:///{tmp_path}/x.db").path == tmp_path / "x.db"
    memory = open_trace_store("memory")
    memory.record(trace(1))
    assert memory.count() == 1
    none = open_trace_store("none")
    none.record(trace(1))
    assert none.count() == 0


def test_files_from_the_wider_schema_still_work(tmp_path: Path) -> None:
    """A file whose table has every summary column and BLOB data (earlier versions)."""
    import orjson

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE traces (trace_id TEXT PRIMARY KEY, created_at, requested_model, model, "
        "decision, upstream, endpoint, stream, prompt_tokens, completion_tokens, "
        "estimated_cost, cost, ttft_ms, latency_ms, status, error, data BLOB NOT NULL)"
    )
    old = trace(1)
    conn.execute(
        "INSERT INTO traces (trace_id, created_at, data) VALUES (?, ?, ?)",
        (old.trace_id, old.created_at, orjson.dumps(old)),
    )
    conn.commit()
    conn.close()
    store = SQLiteTraceStore(path, flush_interval_ms=5)
    store.record(trace(2))
    store.flush()
    assert store.recent(5) == [summary(trace(2)), summary(old)]
    assert store.get(old.trace_id)["route"]["model"] == "small"
    store.close()


def test_traces_past_the_retention_are_deleted(tmp_path: Path) -> None:
    old_store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=5)
    now = time.time()
    for i, age_days in enumerate([40, 31, 29, 1]):
        t = trace(i)
        t.created_at = now - age_days * 86400
        old_store.record(t)
    old_store.flush()
    old_store.close()
    assert old_store.count() == 4
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=5, retention_days=30)
    store.start()
    deadline = time.monotonic() + 5
    while store.count() > 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(r["trace_id"] for r in store.recent(10)) == ["t00002", "t00003"]
    store.close()
