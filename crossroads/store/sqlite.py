"""SQLite trace store (WAL): rows queued by the request path, inserted in batches by a writer."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from crossroads.exceptions import StoreError
from crossroads.feedback import from_row
from crossroads.store.base import SUMMARY_COLUMNS, TraceQuery, settle_repeat
from crossroads.store.batched import BatchedTraceStore, Row
from crossroads.store.spend import check_dimensions, spend_range, spend_sql
from crossroads.types import Feedback

# Only the key and the time are columns: the request-time path writes as little as it can.
# The summary columns are read out of each trace's JSON when traces are listed.
SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_created_at ON traces (created_at);
CREATE TABLE IF NOT EXISTS feedback (
    trace_id TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (trace_id, source)
);
"""
LABELED = (
    "SELECT t.data AS trace, f.data AS feedback FROM feedback AS f "
    "JOIN traces AS t ON t.trace_id = f.trace_id "
    "WHERE t.created_at >= ? AND t.created_at < ? ORDER BY t.created_at, t.trace_id, f.source"
)
# A chunk of traces goes in with one multi-row INSERT: one statement step (one GIL release)
# per chunk instead of one per row, so the writer thread never queues for the GIL per row.
# Chunks come in these sizes only (a batch of 23 rows is 16 + 4 + 2 + 1): eight statements,
# compiled once and kept in the connection's statement cache, where a statement per batch
# length would be compiled anew for most batches (~9k instructions a trace).
CHUNKS = (128, 64, 32, 16, 8, 4, 2, 1)  # 3 parameters a row, well under SQLite's limit


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
# TraceQuery fields matched on a summary column (the JSON).
FILTERED = {
    "model": "model",
    "decision": "decision",
    "key": "key_name",
    "team": "team",
    "format": "format",
}
QUERY_CHECK_EVERY = 20_000  # SQLite VM steps between checks of a query's deadline
SPEND = {
    "key": "json_extract(d, '$.caller.key_name')",
    "team": "json_extract(d, '$.caller.team')",
    "model": _PATHS["model"],
    "day": "date(created_at, 'unixepoch')",
    "prompt_tokens": _PATHS["prompt_tokens"],
    "completion_tokens": _PATHS["completion_tokens"],
    "cost": _PATHS["cost"],
}
SPEND_SOURCE = (
    "(SELECT created_at, CAST(data AS TEXT) AS d FROM traces "
    "WHERE created_at >= ? AND created_at < ?)"
)
# The sqlite3 module adapts every parameter that is not an int, float, str or bytearray: for
# a bytes value with no adapter registered it looks up __adapt__ on its protocol type, an
# AttributeError formatted and cleared for every trace. bytes() of a bytes object is that
# object, so this adapter binds the same value, found at once (the module's registry is
# process-wide: one another library registered for bytes is left alone).
if (bytes, sqlite3.PrepareProtocol) not in sqlite3.adapters:
    sqlite3.register_adapter(bytes, bytes)
# A write the database file refuses (locked, full, I/O error) waits this long for the lock in
# each try (see BACKOFF_S in crossroads.store.batched): about 2 s of busy waits in all.
BUSY_TIMEOUT_S = 0.5


class SQLiteTraceStore(BatchedTraceStore):
    """Traces in a SQLite file. Several worker processes may share one file (WAL).

    The writer is :class:`~crossroads.store.batched.BatchedTraceStore`'s; a write the file
    refuses (locked, full) is retried for a few seconds, then dropped.
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
        super().__init__(flush_interval_ms, batch_size, retention_days, max_queue, drain_timeout_s)
        self.path = Path(path)
        self.where = str(self.path)
        self.call_timeout_s = BUSY_TIMEOUT_S

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

    def _insert_rows(self, conn: sqlite3.Connection, rows: list[Row]) -> None:
        start = 0
        with conn:
            for size in CHUNKS:
                while len(rows) - start >= size:
                    chunk = rows[start : start + size]
                    start += size
                    conn.execute(insert_rows(size), [v for row in chunk for v in row])

    def _store_fault(self, exc: Exception) -> bool:
        # The file's fault (locked, busy, full, I/O, corrupt), not a row's.
        return type(exc) in (sqlite3.OperationalError, sqlite3.DatabaseError)

    def _delete_before(self, conn: sqlite3.Connection, before: float) -> int:
        with conn:
            conn.execute("DELETE FROM feedback WHERE created_at < ?", (before,))
            return conn.execute("DELETE FROM traces WHERE created_at < ?", (before,)).rowcount

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
        scan, filters, args = where(query, _PATHS)
        sql = SEARCH.format(scan=" AND ".join(scan) or "1", filters=" AND ".join(filters) or "1")
        rows = [dict(r) for r in self._read(sql, [*args, query.limit], query.timeout_s)]
        for row in rows:
            row["candidates"] = orjson.loads(row["candidates"])
        return rows

    def _get_written(self, trace_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT data FROM traces WHERE trace_id = ?", (trace_id,))
        return orjson.loads(rows[0]["data"]) if rows else None

    def add_feedback(self, feedback: Feedback) -> tuple[Feedback, bool]:
        conn = self._connect()
        try:
            with conn:
                added = conn.execute(
                    "INSERT OR IGNORE INTO feedback (trace_id, source, created_at, data) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        feedback.trace_id,
                        feedback.source,
                        feedback.created_at,
                        orjson.dumps(feedback),
                    ),
                ).rowcount
                stored = conn.execute(
                    "SELECT data FROM feedback WHERE trace_id = ? AND source = ?",
                    (feedback.trace_id, feedback.source),
                ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write feedback to {self.path}: {exc}") from exc
        finally:
            conn.close()
        if added:
            return feedback, True
        return settle_repeat(from_row(stored[0]), feedback)

    def feedback(self, trace_id: str) -> list[Feedback]:
        rows = self._read(
            "SELECT data FROM feedback WHERE trace_id = ? ORDER BY source", (trace_id,)
        )
        return [from_row(r["data"]) for r in rows]

    def labeled(
        self, since: float | None = None, until: float | None = None
    ) -> list[tuple[dict[str, Any], list[Feedback]]]:
        return group_labeled(self._read(LABELED, spend_range(since, until)))

    def count(self) -> int:
        rows = self._read("SELECT COUNT(*) AS n FROM traces")
        return int(rows[0]["n"]) if rows else 0

    def spend(
        self, by: Sequence[str], since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        sql = spend_sql(check_dimensions(by), SPEND, SPEND_SOURCE)
        return [dict(r) for r in self._read(sql, spend_range(since, until))]


def group_labeled(rows: Any) -> list[tuple[dict[str, Any], list[Feedback]]]:
    """(trace, its feedback) pairs of rows of (trace, feedback) ordered by trace."""
    found: list[tuple[dict[str, Any], list[Feedback]]] = []
    last = None
    for row in rows:
        trace = row["trace"]
        trace = orjson.loads(trace) if isinstance(trace, bytes | str) else trace
        if last != trace["trace_id"]:
            found.append((trace, []))
            last = trace["trace_id"]
        found[-1][1].append(from_row(row["feedback"]))
    return found


def where(q: TraceQuery, paths: dict[str, str]) -> tuple[list[str], list[str], list[Any]]:
    """The SQL conditions of a query: on the indexed columns (``scan``), on the JSON
    (``filters``, each column read with its expression in ``paths``), and their arguments in
    order, as ``?`` placeholders."""
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
    for name, column in FILTERED.items():
        value = getattr(q, name)
        if value is not None:
            filters.append(f"{paths[column]} = ?")
            args.append(value)
    status = paths["status"]
    if q.status == "ok":
        filters.append(f"{status} < 400")
    elif q.status == "error":
        filters.append(f"{status} >= 400")
    elif q.status is not None:
        filters.append(f"{status} = ?")
        args.append(q.status)
    return scan, filters, args
