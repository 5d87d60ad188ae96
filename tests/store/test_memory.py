from __future__ import annotations

from pathlib import Path

from crossroads.store.memory import MemoryTraceStore
from crossroads.store.sqlite import SQLiteTraceStore
from crossroads.types import Trace


def trace(i: int) -> Trace:
    return Trace(f"t{i:05d}", 1_700_000_000 + i, "auto", "chat", False)


def test_stats_keep_the_sqlite_contract(tmp_path: Path) -> None:
    memory = MemoryTraceStore()
    sqlite = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=5)
    for store in (memory, sqlite):
        for i in range(3):
            store.record(trace(i))
        store.flush()
    assert memory.stats() == sqlite.stats()
    assert memory.stats() == {
        "queued": 0,
        "written": 3,
        "dropped": 0,
        "dropped_by_reason": {"queue_full": 0, "bad_trace": 0, "write_error": 0, "shutdown": 0},
        "writer_alive": True,
    }
    sqlite.close()


def test_the_none_store_writes_nothing_and_drops_nothing() -> None:
    store = MemoryTraceStore(keep=False)
    store.record(trace(1))
    assert store.count() == 0
    assert store.stats()["written"] == 0 and store.stats()["dropped"] == 0
