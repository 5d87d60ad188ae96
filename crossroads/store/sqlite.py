"""SQLite trace store (WAL): a writer thread batches inserts; the request path only enqueues."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from crossroads.exceptions import StoreError
from crossroads.store.base import TraceStore
from crossroads.types import Trace

log = logging.getLogger("crossroads.store")

COLUMNS = (
    "trace_id",
    "created_at",
    "requested_model",
    "model",
    "decision",
    "upstream",
    "endpoint",
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
)
# Only the key and the time are columns: the request-time path writes as little as it can.
# The summary columns are read out of each trace's JSON when traces are listed.
SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_created_at ON traces (created_at);
"""
# A chunk of traces goes in with one multi-row INSERT: one statement step (one GIL release)
# per chunk instead of one per row, so the writer thread never queues for the GIL per row.
CHUNK = 100  # rows per statement (3 parameters each, well under SQLite's limit)


@functools.cache
def insert_rows(n: int) -> str:
    """``INSERT`` of ``n`` rows of (trace_id, created_at, data)."""
    rows = ", ".join(["(?, ?, ?)"] * n)
    return f"INSERT OR IGNORE INTO traces (trace_id, created_at, data) VALUES {rows}"


_PATHS = {c: f"json_extract(d, '$.{c}')" for c in COLUMNS} | {
    "model": "coalesce(json_extract(d, '$.model'), json_extract(d, '$.route.model'))",
    "decision": "json_extract(d, '$.route.decision')",
    "prompt_tokens": "json_extract(d, '$.usage.prompt_tokens')",
    "completion_tokens": "json_extract(d, '$.usage.completion_tokens')",
    "estimated_cost": "json_extract(d, '$.route.estimated_cost')",
}
# The JSON is kept as bytes (a BLOB); the JSON functions read text.
RECENT = (
    f"SELECT {', '.join(f'{_PATHS[c]} AS {c}' for c in COLUMNS)} FROM "
    "(SELECT CAST(data AS TEXT) AS d FROM traces ORDER BY created_at DESC LIMIT ?)"
)
PRUNE_EVERY_S = 3600
WRITER_NICE = 10  # the writer's share of a contended core stays above its few percent


class SQLiteTraceStore(TraceStore):
    """Traces in a SQLite file. Several worker processes may share one file (WAL).

    The request path only appends to a deque (no lock, no wake-up). A writer thread wakes
    every ``flush_interval_ms``, drains what has accumulated and writes it in transactions
    of at most ``batch_size`` rows; a failed write is retried, never dropped.
    """

    def __init__(
        self,
        path: str | Path,
        flush_interval_ms: int = 200,
        batch_size: int = 500,
        retention_days: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.flush_interval_ms = flush_interval_ms
        self.batch_size = batch_size
        self.retention_days = retention_days
        self._queue: deque[Trace] = deque()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._appended = 0  # written only by request threads
        self._written = 0  # written only by the writer thread
        self._failed_since: float | None = None

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            return conn
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open trace store {self.path}: {exc}") from exc

    def start(self) -> None:
        if self._thread is not None:
            return
        self._connect().close()  # fail at start-up, not on the first request
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="crossroads-traces", daemon=True)
        self._thread.start()

    def record(self, trace: Trace) -> None:
        if self._thread is None:
            self.start()
        self._appended += 1
        self._queue.append(trace)

    def _run(self) -> None:
        _lower_priority()
        conn = self._connect()
        wait = self.flush_interval_ms / 1000
        batch: list[Trace] = []
        pruned_at = float("-inf")
        while True:
            if self.retention_days is not None and time.monotonic() - pruned_at > PRUNE_EVERY_S:
                pruned_at = time.monotonic()
                self._prune(conn, time.time() - self.retention_days * 86400)
            stopping = self._stop.wait(wait)
            while True:
                while self._queue and len(batch) < self.batch_size:
                    batch.append(self._queue.popleft())
                if not batch:
                    break
                if not self._write(conn, batch):
                    break  # busy or broken: keep the batch, retry after the next wait
                self._written += len(batch)
                batch = []
            if stopping and not batch and not self._queue:
                break
            if stopping and batch:
                time.sleep(min(1.0, wait))
        conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list[Trace]) -> bool:
        try:
            with conn:
                for start in range(0, len(batch), CHUNK):
                    chunk = batch[start : start + CHUNK]
                    params: list[Any] = []
                    for trace in chunk:
                        params += (trace.trace_id, trace.created_at, orjson.dumps(trace))
                    conn.execute(insert_rows(len(chunk)), params)
            self._failed_since = None
            return True
        except sqlite3.Error as exc:
            if self._failed_since is None:
                self._failed_since = time.monotonic()
                log.error(
                    "writing %d traces to %s failed (%s); retrying", len(batch), self.path, exc
                )
            return False

    def _prune(self, conn: sqlite3.Connection, before: float) -> None:
        """Delete traces created before ``before`` (unix seconds); a failure waits an hour."""
        try:
            with conn:
                deleted = conn.execute("DELETE FROM traces WHERE created_at < ?", (before,))
            if deleted.rowcount:
                log.info("deleted %d traces past store.retention_days", deleted.rowcount)
        except sqlite3.Error as exc:
            log.error("deleting old traces from %s failed: %s", self.path, exc)

    def flush(self, timeout: float = 10.0) -> None:
        target = self._appended
        deadline = time.monotonic() + timeout
        while self._written < target:
            if time.monotonic() > deadline:
                raise StoreError(
                    f"{target - self._written} traces still unwritten after {timeout} s"
                )
            time.sleep(0.005)

    def close(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=60)
        self._thread = None

    def healthy(self) -> bool:
        return self._failed_since is None or time.monotonic() - self._failed_since < 30

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if not self.path.exists():
            return []
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            conn.row_factory = sqlite3.Row
            try:
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read trace store {self.path}: {exc}") from exc

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read(RECENT, (limit,))]

    def get(self, trace_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT data FROM traces WHERE trace_id = ?", (trace_id,))
        return orjson.loads(rows[0]["data"]) if rows else None

    def count(self) -> int:
        rows = self._read("SELECT COUNT(*) AS n FROM traces")
        return int(rows[0]["n"]) if rows else 0


def _lower_priority() -> None:
    """Let the request path have the core first: the writer thread is niced (Linux keeps a
    nice value per thread). It only needs a few percent of a core to keep up."""
    # Not Linux, or not allowed: the writer runs at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
