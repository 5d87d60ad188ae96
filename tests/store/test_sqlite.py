"""What only the SQLite trace store does: its file specs, old files, a full disk, a corrupt file.
The contract it shares with PostgreSQL is in test_batched.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crossroads.exceptions import StoreError
from crossroads.store import batched, open_trace_store
from crossroads.store import sqlite as sqlite_module
from crossroads.store.base import summary
from crossroads.store.sqlite import SQLiteTraceStore
from tests.store.test_batched import trace
from tests.support.store_faults import FullDiskStore


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


def test_a_batch_goes_in_as_chunks_of_the_fixed_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """203 rows: 128 + 64 + 8 + 2 + 1, each chunk one statement of a size in CHUNKS."""
    sizes: list[int] = []
    statement = sqlite_module.insert_rows

    def insert_rows(n: int) -> str:
        sizes.append(n)
        return statement(n)

    store = SQLiteTraceStore(tmp_path / "t.db")
    conn = store._connect()
    monkeypatch.setattr(sqlite_module, "insert_rows", insert_rows)
    store._insert_rows(conn, [store._encode(trace(i)) for i in range(203)])
    conn.close()
    assert sizes == [128, 64, 8, 2, 1]
    assert store.count() == 203
    assert store.get(trace(202).trace_id)["route"]["model"] == "small"


def test_bytes_bind_through_the_identity_adapter(tmp_path: Path) -> None:
    """The JSON goes in as the same bytes, and reads back as bytes (a BLOB)."""
    assert sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)] is bytes
    store = SQLiteTraceStore(tmp_path / "t.db")
    conn = store._connect()
    row = store._encode(trace(1))
    store._insert_rows(conn, [row])
    stored = conn.execute("SELECT data, typeof(data) FROM traces").fetchone()
    conn.close()
    assert stored == (row[2], "blob")


# ---------------------------------------------------------------- faults: nothing kills the writer


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short busy waits and backoffs: a locked or full file gives up in well under a second."""
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(batched, "BACKOFF_S", (0.01, 0.02))


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
