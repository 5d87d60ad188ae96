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
from crossroads.store.base import (
    DROP_REASONS,
    SUMMARY_COLUMNS,
    TraceQuery,
    TraceStore,
    store_stats,
)
from crossroads.types import Trace

log = logging.getLogger("crossroads.store")

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


_PATHS = {c: f"json_extract(d, '$.{c}')" for c in SUMMARY_COLUMNS} | {
    "trace_id": "id",
    "created_at": "at",
    "model": "coalesce(json_extract(d, '$.model'), json_extract(d, '$.route.model'))",
    "decision": "json_extract(d, '$.route.decision')",
    # traces written before the rename carry it as "endpoint"
    "operation": "coalesce(json_extract(d, '$.operation'), json_extract(d, '$.endpoint'))",
    "prompt_tokens": "json_extract(d, '$.usage.prompt_tokens')",
    "completion_tokens": "json_extract(d, '$.usage.completion_tokens')",
    "estimated_cost": "json_extract(d, '$.route.estimated_cost')",
    "key_name": "json_extract(d, '$.caller.key_name')",
    "team": "json_extract(d, '$.caller.team')",
    "candidates": "(SELECT json_group_array(json_extract(c.value, '$.model')) "
    "FROM json_each(d, '$.route.candidates') AS c)",
}
# The JSON is kept as bytes (a BLOB); the JSON functions read text. The time and the cursor
# bound the scan through the created_at index; the other filters read each trace's JSON.
SEARCH = (
    f"SELECT {', '.join(f'{_PATHS[c]} AS {c}' for c in SUMMARY_COLUMNS)} FROM "
    "(SELECT trace_id AS id, created_at AS at, CAST(data AS TEXT) AS d FROM traces "
    "WHERE {scan}) WHERE {filters} ORDER BY at DESC, id DESC LIMIT ?"
)
_FILTERS = {
    "model": f"{_PATHS['model']} = ?",
    "decision": f"{_PATHS['decision']} = ?",
    "key": f"{_PATHS['key_name']} = ?",
    "team": f"{_PATHS['team']} = ?",
    "format": f"{_PATHS['format']} = ?",
}
QUERY_CHECK_EVERY = 20_000  # SQLite VM steps between checks of a query's deadline
PRUNE_EVERY_S = 3600
WRITER_NICE = 10  # the writer's share of a contended core stays above its few percent
# A write the database file refuses (locked, full, I/O error) is tried again after each pause,
# then its traces are dropped: about 2 s of busy waits and 1 s of pauses in all.
BUSY_TIMEOUT_S = 0.5
BACKOFF_S = (0.1, 0.3, 0.6)
UNHEALTHY_AFTER_S = 30  # writes failing this long make the store unhealthy (/ready says 503)
LOG_EVERY_S = 60  # each kind of write error is logged at most this often
CLOSE_GRACE_S = 2.0  # close waits this long past the drain bound for a writer stuck in a call

Row = tuple[Any, Any, bytes]


def _file_error(exc: Exception) -> bool:
    """Whether ``exc`` is the database file's fault (locked, busy, full, I/O, corrupt) rather
    than a row's (a value the driver cannot bind, a constraint it breaks)."""
    return type(exc) in (sqlite3.OperationalError, sqlite3.DatabaseError)


class SQLiteTraceStore(TraceStore):
    """Traces in a SQLite file. Several worker processes may share one file (WAL).

    The request path only appends to a deque (no lock, no wake-up), up to ``max_queue``
    traces; beyond that a trace is dropped. A writer thread wakes every ``flush_interval_ms``,
    drains what has accumulated and writes it in transactions of at most ``batch_size`` rows.
    A trace that cannot be serialised or inserted is dropped alone; a write the file refuses
    (locked, full) is retried for a few seconds, then dropped. :meth:`close` drains for at
    most ``drain_timeout_s``. Every dropped trace is counted by reason (:meth:`stats`).
    """

    def __init__(
        self,
        path: str | Path,
        flush_interval_ms: int = 200,
        batch_size: int = 500,
        retention_days: float | None = None,
        max_queue: int = 100_000,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.flush_interval_ms = flush_interval_ms
        self.batch_size = batch_size
        self.retention_days = retention_days
        self.max_queue = max_queue
        self.drain_timeout_s = drain_timeout_s
        self._queue: deque[Trace] = deque()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline: float | None = None  # set by close: the drain ends then
        self._appended = 0  # written only by request threads
        self._queue_full = 0  # written only by request threads
        self._written = 0  # written only by the writer thread
        # Written by the writer thread (and by close once it has stopped); every key is
        # present from the start so that stats() may copy it from another thread.
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._failed_since: float | None = None
        self._cannot_open = False
        self._logged_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            return conn
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open trace store {self.path}: {exc}") from exc

    def start(self) -> None:
        if self._thread is not None:
            return
        try:
            self._connect().close()  # fail at start-up, not on the first request
        except StoreError:
            self._cannot_open = True
            raise
        self._cannot_open = False
        self._stop.clear()
        self._deadline = None
        self._thread = threading.Thread(target=self._run, name="crossroads-traces", daemon=True)
        self._thread.start()

    def record(self, trace: Trace) -> None:
        if self._thread is None:
            try:
                self.start()
            except StoreError as exc:
                self._dropped["write_error"] += 1
                self._log("write_error", "dropped a trace: %s", exc)
                return
        if len(self._queue) >= self.max_queue:
            self._queue_full += 1
            return
        self._appended += 1
        self._queue.append(trace)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        try:
            _lower_priority()
            conn = self._connect()
            try:
                self._loop(conn)
            finally:
                conn.close()
        except Exception:
            log.exception("the trace writer for %s stopped", self.path)

    def _loop(self, conn: sqlite3.Connection) -> None:
        wait = self.flush_interval_ms / 1000
        pruned_at = float("-inf")
        while True:
            if self.retention_days is not None and time.monotonic() - pruned_at > PRUNE_EVERY_S:
                pruned_at = time.monotonic()
                self._prune(conn, time.time() - self.retention_days * 86400)
            stopping = self._stop.wait(wait)
            while self._queue:
                if self._past_deadline():
                    self._drop_queued("shutdown")
                    break
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
                try:
                    self._write(conn, batch)
                except Exception as exc:  # a bug, not a fault of the file or of one trace
                    self._dropped["write_error"] += len(batch)
                    self._log("write_error", "dropped %d traces: %r", len(batch), exc)
            if stopping:
                return

    def _write(self, conn: sqlite3.Connection, batch: list[Trace]) -> None:
        """Write ``batch``; whatever cannot be written is dropped and counted."""
        rows: list[Row] = []
        for trace in batch:
            try:
                rows.append((trace.trace_id, trace.created_at, orjson.dumps(trace)))
            except Exception as exc:
                self._drop_bad(trace.trace_id, exc)
        for attempt, pause in enumerate((*BACKOFF_S, None), 1):
            if not rows:
                return
            try:
                self._insert(conn, rows)
            except sqlite3.Error as exc:  # the file refuses: locked, busy, full, broken
                if self._failed_since is None:
                    self._failed_since = time.monotonic()
                log.debug("writing traces to %s failed: %s", self.path, exc)
                if pause is not None and self._sleep(pause):
                    continue
                if self._past_deadline():  # close() logs what the drain could not write
                    self._dropped["shutdown"] += len(rows)
                    return
                self._dropped["write_error"] += len(rows)
                self._log(
                    "write_error",
                    "dropped %d traces after %d tries to write them to %s: %s",
                    len(rows),
                    attempt,
                    self.path,
                    exc,
                )
                return
            self._failed_since = None
            return

    def _insert(self, conn: sqlite3.Connection, rows: list[Row]) -> None:
        """Insert ``rows``, removing each from the list once it is written or refused. An error
        of the file itself propagates, with the rows still to write left in the list."""
        try:
            with conn:
                for start in range(0, len(rows), CHUNK):
                    chunk = rows[start : start + CHUNK]
                    conn.execute(insert_rows(len(chunk)), [v for row in chunk for v in row])
        except Exception as exc:
            if _file_error(exc):
                raise
        else:
            self._written += len(rows)
            rows.clear()
            return
        # One row the database refuses fails its whole statement: find it, row by row.
        rows.reverse()
        while rows:
            try:
                with conn:
                    conn.execute(insert_rows(1), rows[-1])
                self._written += 1
            except Exception as exc:
                if _file_error(exc):
                    rows.reverse()
                    raise
                self._drop_bad(rows[-1][0], exc)
            rows.pop()

    def _drop_bad(self, trace_id: Any, exc: Exception) -> None:
        self._dropped["bad_trace"] += 1
        self._log("bad_trace", "dropped trace %s: it cannot be stored (%r)", trace_id, exc)

    def _drop_queued(self, reason: str) -> int:
        n = 0
        while self._queue:
            self._queue.popleft()
            n += 1
        self._dropped[reason] += n
        return n

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _sleep(self, seconds: float) -> bool:
        """Pause before a retry; False if the drain at shutdown has no time left for one."""
        if self._deadline is not None:
            seconds = min(seconds, self._deadline - time.monotonic())
            if seconds <= 0:
                return False
        time.sleep(seconds)
        return True

    def _log(self, kind: str, message: str, *args: Any) -> None:
        """Log an error, each ``kind`` at most once per LOG_EVERY_S (saying how many were not)."""
        now = time.monotonic()
        if now - self._logged_at.get(kind, float("-inf")) < LOG_EVERY_S:
            self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
            return
        self._logged_at[kind] = now
        unlogged = self._unlogged.pop(kind, 0)
        if unlogged:
            message += f" (and {unlogged} more since the last such message)"
        log.error(message, *args)

    def _prune(self, conn: sqlite3.Connection, before: float) -> None:
        """Delete traces created before ``before`` (unix seconds); a failure waits an hour."""
        try:
            with conn:
                deleted = conn.execute("DELETE FROM traces WHERE created_at < ?", (before,))
            if deleted.rowcount:
                log.info("deleted %d traces past store.retention_days", deleted.rowcount)
        except Exception as exc:
            log.error("deleting old traces from %s failed: %s", self.path, exc)

    # ------------------------------------------------------------------ control

    def _settled(self) -> int:
        """Traces the writer is done with: written or dropped."""
        d = self._dropped
        return self._written + d["bad_trace"] + d["write_error"] + d["shutdown"]

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every queued trace is written or dropped."""
        target = self._appended
        deadline = time.monotonic() + timeout
        while self._settled() < target:
            thread = self._thread
            if thread is None or not thread.is_alive():
                raise StoreError(
                    f"the trace writer is not running: {target - self._settled()} traces unwritten"
                )
            if time.monotonic() > deadline:
                raise StoreError(
                    f"{target - self._settled()} traces still unwritten after {timeout} s"
                )
            time.sleep(0.005)

    def close(self) -> None:
        """Drain the queue for at most ``drain_timeout_s``; what is left is dropped, counted
        and logged."""
        thread = self._thread
        if thread is None:
            return
        before = self._dropped["shutdown"]
        self._deadline = time.monotonic() + self.drain_timeout_s
        self._stop.set()
        thread.join(timeout=self.drain_timeout_s + BUSY_TIMEOUT_S + CLOSE_GRACE_S)
        if thread.is_alive():  # stuck in one call: what it holds is lost with what is queued
            self._dropped["shutdown"] += self._appended - self._settled()
        else:  # a dead writer left the queue behind; or traces came during the drain
            self._drop_queued("shutdown")
        dropped = self._dropped["shutdown"] - before
        if dropped:
            log.error(
                "dropped %d traces unwritten at shutdown (store.drain_timeout_s = %s)",
                dropped,
                self.drain_timeout_s,
            )
        self._thread = None

    def healthy(self) -> bool:
        thread = self._thread
        if self._cannot_open or (thread is not None and not thread.is_alive()):
            return False
        failing = self._failed_since
        return failing is None or time.monotonic() - failing < UNHEALTHY_AFTER_S

    def stats(self) -> dict[str, Any]:
        dropped = dict(self._dropped)
        dropped["queue_full"] = self._queue_full
        thread = self._thread
        return store_stats(
            queued=max(0, self._appended - self._settled()),
            written=self._written,
            dropped=dropped,
            writer_alive=thread is not None and thread.is_alive(),
        )

    def _read(
        self, sql: str, args: tuple[Any, ...] | list[Any] = (), timeout_s: float | None = None
    ) -> list[sqlite3.Row]:
        if not self.path.exists():
            return []
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            conn.row_factory = sqlite3.Row
            if timeout_s is not None:
                deadline = time.monotonic() + timeout_s
                conn.set_progress_handler(lambda: time.monotonic() > deadline, QUERY_CHECK_EVERY)
            try:
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if timeout_s is not None and str(exc) == "interrupted":
                raise StoreError(
                    f"reading the trace store {self.path} took longer than {timeout_s} s: "
                    "narrow the time window or the filters"
                ) from exc
            raise StoreError(f"cannot read trace store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read trace store {self.path}: {exc}") from exc

    def search(self, query: TraceQuery) -> list[dict[str, Any]]:
        scan, filters, args = _where(query)
        sql = SEARCH.format(scan=" AND ".join(scan) or "1", filters=" AND ".join(filters) or "1")
        rows = [dict(r) for r in self._read(sql, [*args, query.limit], query.timeout_s)]
        for row in rows:
            row["candidates"] = orjson.loads(row["candidates"])
        return rows

    def get(self, trace_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT data FROM traces WHERE trace_id = ?", (trace_id,))
        return orjson.loads(rows[0]["data"]) if rows else None

    def count(self) -> int:
        rows = self._read("SELECT COUNT(*) AS n FROM traces")
        return int(rows[0]["n"]) if rows else 0


def _where(q: TraceQuery) -> tuple[list[str], list[str], list[Any]]:
    """The SQL conditions of a query: on the indexed columns (``scan``), on the JSON
    (``filters``), and their arguments in order."""
    scan: list[str] = []
    args: list[Any] = []
    if q.since is not None:
        scan.append("created_at >= ?")
        args.append(q.since)
    if q.until is not None:
        scan.append("created_at < ?")
        args.append(q.until)
    if q.after is not None:
        scan.append("created_at <= ? AND (created_at < ? OR trace_id < ?)")
        args += [q.after[0], q.after[0], q.after[1]]
    if q.trace_id is not None:
        scan.append("substr(trace_id, 1, ?) = ?")
        args += [len(q.trace_id), q.trace_id]
    filters: list[str] = []
    for name, condition in _FILTERS.items():
        value = getattr(q, name)
        if value is not None:
            filters.append(condition)
            args.append(value)
    status = _PATHS["status"]
    if q.status == "ok":
        filters.append(f"{status} < 400")
    elif q.status == "error":
        filters.append(f"{status} >= 400")
    elif q.status is not None:
        filters.append(f"{status} = ?")
        args.append(q.status)
    return scan, filters, args


def _lower_priority() -> None:
    """Let the request path have the core first: the writer thread is niced (Linux keeps a
    nice value per thread). It only needs a few percent of a core to keep up."""
    # Not Linux, or not allowed: the writer runs at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
