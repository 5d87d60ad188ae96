from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from crossroads.exceptions import StoreError
from crossroads.store import open_trace_store
from crossroads.store import sqlite as sqlite_module
from crossroads.store.base import summary
from crossroads.store.sqlite import SQLiteTraceStore
from crossroads.types import Candidate, RecordedCaller, Route, Trace, Usage
from tests.support.store_faults import FullDiskStore


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


# ---------------------------------------------------------------- faults: nothing kills the writer


def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short busy waits and backoffs: a locked or full file gives up in well under a second."""
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(sqlite_module, "BACKOFF_S", (0.01, 0.02))


def big_usage(t: Trace) -> None:
    t.usage = Usage(10**30, 5)  # orjson: "Integer exceeds 64-bit range" (a TypeError)


def huge_created_at(t: Trace) -> None:
    t.created_at = 10**30  # the sqlite3 driver: OverflowError binding the parameter


def unserialisable(t: Trace) -> None:
    t.route = object()  # type: ignore[assignment]


@pytest.mark.parametrize("spoil", [big_usage, huge_created_at, unserialisable])
def test_a_bad_trace_costs_only_itself(tmp_path: Path, spoil, caplog) -> None:  # type: ignore[no-untyped-def]
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=50)
    store.start()
    bad = [trace(i) for i in range(1, 40, 2)]
    for t in bad:
        spoil(t)
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


def test_a_dead_writer_is_unhealthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("the writer cannot start")

    monkeypatch.setattr(sqlite_module, "_lower_priority", broken)
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=5)
    store.start()
    wait_for(lambda: not store._thread.is_alive())
    assert not store.healthy()
    assert store.stats()["writer_alive"] is False
    store.record(trace(1))
    started = time.monotonic()
    with pytest.raises(StoreError, match="not running"):
        store.flush(timeout=30)
    assert time.monotonic() - started < 5
    store.close()


def test_the_queue_is_bounded(tmp_path: Path) -> None:
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=60_000, max_queue=10)
    store.start()  # the writer sleeps for a minute: nothing leaves the queue
    for i in range(15):
        store.record(trace(i))
    stats = store.stats()
    assert stats["queued"] == 10
    assert stats["dropped"] == 5 and stats["dropped_by_reason"]["queue_full"] == 5
    store.close()
    assert store.count() == 10
    assert store.stats()["written"] == 10


def test_a_locked_database_drops_after_bounded_retries_then_recovers(
    tmp_path: Path, quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.db"
    store = SQLiteTraceStore(path, flush_interval_ms=5)
    store.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for i in range(5):
        store.record(trace(i))
    wait_for(lambda: store.stats()["dropped_by_reason"]["write_error"] == 5)
    assert store.stats()["writer_alive"] and store.stats()["queued"] == 0
    (error,) = [r for r in caplog.records if r.name == "crossroads.store"]
    assert "dropped" in error.getMessage() and "locked" in error.getMessage()
    blocker.rollback()
    blocker.close()
    store.record(trace(10))
    store.flush(timeout=5)
    assert [r["trace_id"] for r in store.recent()] == ["t00010"]
    assert store.stats()["written"] == 1 and store.stats()["dropped"] == 5
    store.close()


def test_a_full_disk_drops_after_bounded_retries_then_recovers(
    tmp_path: Path, quick_retries: None
) -> None:
    store = FullDiskStore(tmp_path / "t.db", flush_interval_ms=5, spare_pages=2)
    store.start()
    for i in range(20):
        t = trace(i)
        t.error = "x" * 4000  # a page or more each: the file fills after a few
        store.record(t)
    store.flush(timeout=10)
    stats = store.stats()
    assert stats["dropped_by_reason"]["write_error"] > 0
    assert stats["written"] + stats["dropped"] == 20 and stats["writer_alive"]
    store.free()
    store.record(trace(100))
    store.flush(timeout=5)
    assert store.get("t00100") is not None
    assert store.healthy()
    store.close()


def test_a_corrupted_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    path.write_bytes(b"this is not a database\n" * 512)
    store = SQLiteTraceStore(path)
    with pytest.raises(StoreError, match=r"t\.db.*not a database"):
        store.start()
    store.record(trace(1))  # never raises: the trace is counted as dropped
    stats = store.stats()
    assert stats["dropped"] == 1 and stats["dropped_by_reason"]["write_error"] == 1
    assert not store.healthy()


def test_close_drains_within_its_bound(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.db"
    # The first write waits BUSY_TIMEOUT_S for the lock, longer than the drain may take.
    assert sqlite_module.BUSY_TIMEOUT_S > 0.2
    store = SQLiteTraceStore(path, flush_interval_ms=60_000, batch_size=5, drain_timeout_s=0.2)
    store.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # nothing can be written before the bound passes
    for i in range(20):
        store.record(trace(i))
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < 5
    blocker.rollback()
    blocker.close()
    stats = store.stats()
    assert stats["written"] == 0 and stats["queued"] == 0
    assert stats["dropped"] == 20 and stats["dropped_by_reason"]["shutdown"] == 20
    assert any("20 traces" in r.getMessage() for r in caplog.records)
    assert store.count() == 0
