"""PostgreSQL trace store: the shared batched writer, rows in ``crossroads_traces`` (JSONB).

``store.traces: postgresql://user@host/db`` (a libpq URL: ``?options=-csearch_path%3Dname``
picks a schema). Needs ``pip install "crossroads[postgres]"`` (psycopg 3), imported when the
store opens. Any number of gateway processes, on any hosts, may write to one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from crossroads.exceptions import StoreError
from crossroads.feedback import from_row
from crossroads.store.base import SUMMARY_COLUMNS, TraceQuery, settle_repeat, trace_json
from crossroads.store.batched import BatchedTraceStore, Row
from crossroads.store.spend import check_dimensions, spend_range, spend_sql
from crossroads.store.sqlite import group_labeled, where
from crossroads.types import Feedback

CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 5000  # one write or read waits this long at most (a held lock, a stall)
SCHEMA = """
CREATE TABLE IF NOT EXISTS crossroads_traces (
    trace_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    data JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS crossroads_traces_created_at ON crossroads_traces (created_at);
CREATE TABLE IF NOT EXISTS crossroads_feedback (
    trace_id TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    data JSONB NOT NULL,
    PRIMARY KEY (trace_id, source)
);
"""
LABELED = (
    "SELECT t.data AS trace, f.data AS feedback FROM crossroads_feedback AS f "
    "JOIN crossroads_traces AS t ON t.trace_id = f.trace_id "
    "WHERE t.created_at >= %s AND t.created_at < %s ORDER BY t.created_at, t.trace_id, f.source"
)
INSERT = (
    "INSERT INTO crossroads_traces (trace_id, created_at, data) VALUES (%s, %s, %s::jsonb) "
    "ON CONFLICT (trace_id) DO NOTHING"
)
_TEXT = {c: f"d->>'{c}'" for c in SUMMARY_COLUMNS} | {
    "trace_id": "id",
    "created_at": "at",
    "model": "coalesce(d->>'model', d->'route'->>'model')",
    "decision": "d->'route'->>'decision'",
    "operation": "coalesce(d->>'operation', d->>'endpoint')",
    "prompt_tokens": "d->'usage'->>'prompt_tokens'",
    "completion_tokens": "d->'usage'->>'completion_tokens'",
    "estimated_cost": "d->'route'->>'estimated_cost'",
    "key_name": "d->'caller'->>'key_name'",
    "team": "d->'caller'->>'team'",
    "candidates": "(SELECT coalesce(jsonb_agg(c->'model'), '[]'::jsonb) FROM "
    "jsonb_array_elements(coalesce(d->'route'->'candidates', '[]'::jsonb)) AS c)",
}
_TYPES = {
    "stream": "boolean",
    "prompt_tokens": "bigint",
    "completion_tokens": "bigint",
    "estimated_cost": "float8",
    "cost": "float8",
    "ttft_ms": "float8",
    "latency_ms": "float8",
    "status": "int",
}
_PATHS = {c: f"({e})::{_TYPES[c]}" if c in _TYPES else e for c, e in _TEXT.items()}
_PATHS["stream"] = f"{_PATHS['stream']}::int"
# The time and the cursor bound the scan through the created_at index; the other filters
# read each trace's JSONB.
SEARCH = (
    f"SELECT {', '.join(f'{_PATHS[c]} AS {c}' for c in SUMMARY_COLUMNS)} FROM "
    "(SELECT trace_id AS id, created_at AS at, data AS d FROM crossroads_traces "
    "WHERE {scan}) AS found WHERE {filters} ORDER BY at DESC, id DESC LIMIT ?"
)
SPEND = {
    "key": "d->'caller'->>'key_name'",
    "team": "d->'caller'->>'team'",
    "model": _PATHS["model"],
    "day": "to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "prompt_tokens": _PATHS["prompt_tokens"],
    "completion_tokens": _PATHS["completion_tokens"],
    "cost": _PATHS["cost"],
}
SPEND_SOURCE = (
    "(SELECT created_at, data AS d FROM crossroads_traces "
    "WHERE created_at >= %s AND created_at < %s) AS spent"
)


def connect(url: str, what: str) -> Any:
    """An autocommit psycopg connection with bounded waits; :class:`StoreError` when the
    driver is missing or the server cannot be reached (``what`` names the store)."""
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError(
            f'{what} {redact_url(url)} needs psycopg: pip install "crossroads[postgres]"'
        ) from exc
    try:
        # The URL's own options (say a search_path) are kept: a keyword would replace them.
        options = psycopg.conninfo.conninfo_to_dict(url).get("options") or ""
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            options=f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip(),
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot open {what} {redact_url(url)}: {exc}") from exc


def create_schema(conn: Any, schema: str) -> None:
    """Run ``schema`` once even when several processes start together (an advisory lock:
    concurrent ``CREATE TABLE IF NOT EXISTS`` can otherwise collide)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('crossroads schema'))")
        conn.execute(schema)


def redact_url(url: str) -> str:
    """``url`` without its password (messages and logs never show it)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresTraceStore(BatchedTraceStore):
    """Traces in PostgreSQL, written in batches by the shared writer thread.

    A lost connection is a fault of the database: the writer reconnects on its next try, so
    writing resumes once the server is back. A trace PostgreSQL refuses (a NUL character
    JSONB cannot hold is replaced first) is dropped alone.
    """

    call_timeout_s = CONNECT_TIMEOUT_S + STATEMENT_TIMEOUT_MS / 1000

    def __init__(
        self,
        url: str,
        flush_interval_ms: int = 200,
        batch_size: int = 500,
        retention_days: float | None = None,
        max_queue: int = 100_000,
        drain_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(flush_interval_ms, batch_size, retention_days, max_queue, drain_timeout_s)
        self.url = url
        self.where = redact_url(url)

    def _connect(self) -> Any:
        conn = connect(self.url, "trace store")
        try:
            create_schema(conn, SCHEMA)
        except Exception as exc:
            conn.close()
            raise StoreError(f"cannot create the trace table in {self.where}: {exc}") from exc
        return conn

    def _encode(self, trace: Any) -> Row:
        # JSONB holds no NUL character; the trace keeps the replacement character instead.
        data = trace_json(trace).replace(b"\\u0000", b"\\ufffd")
        return (trace.trace_id, trace.created_at, data)

    def _insert_rows(self, conn: Any, rows: list[Row]) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(INSERT, [(i, t, d.decode()) for i, t, d in rows])

    def _store_fault(self, exc: Exception) -> bool:
        import psycopg

        # Connection lost, server shutting down, disk full, statement timeout: not a row's.
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)

    def _usable(self, conn: Any) -> bool:
        return not (conn.closed or conn.broken)

    def _delete_before(self, conn: Any, before: float) -> int:
        conn.execute("DELETE FROM crossroads_feedback WHERE created_at < %s", (before,))
        cur = conn.execute("DELETE FROM crossroads_traces WHERE created_at < %s", (before,))
        return int(cur.rowcount)

    def _read(
        self, sql: str, args: Sequence[Any] = (), timeout_s: float | None = None
    ) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        conn = self._connect()
        try:
            with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                if timeout_s is not None:
                    cur.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
                rows: list[dict[str, Any]] = cur.execute(sql.replace("?", "%s"), args).fetchall()
                return rows
        except psycopg.errors.QueryCanceled as exc:
            raise StoreError(
                f"reading the trace store {self.where} took longer than {timeout_s} s: "
                "narrow the time window or the filters"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot read trace store {self.where}: {exc}") from exc
        finally:
            conn.close()

    def search(self, query: TraceQuery) -> list[dict[str, Any]]:
        scan, filters, args = where(query, _PATHS)
        sql = SEARCH.format(
            scan=" AND ".join(scan) or "TRUE", filters=" AND ".join(filters) or "TRUE"
        )
        return self._read(sql, [*args, query.limit], query.timeout_s)

    def _get_written(self, trace_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT data FROM crossroads_traces WHERE trace_id = ?", (trace_id,))
        return rows[0]["data"] if rows else None

    def add_feedback(self, feedback: Feedback) -> tuple[Feedback, bool]:
        import psycopg

        data = orjson.dumps(feedback).replace(b"\\u0000", b"\\ufffd").decode()
        conn = self._connect()
        try:
            with conn.transaction():
                added = conn.execute(
                    "INSERT INTO crossroads_feedback (trace_id, source, created_at, data) "
                    "VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT (trace_id, source) DO NOTHING",
                    (feedback.trace_id, feedback.source, feedback.created_at, data),
                ).rowcount
                stored = conn.execute(
                    "SELECT data FROM crossroads_feedback WHERE trace_id = %s AND source = %s",
                    (feedback.trace_id, feedback.source),
                ).fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"cannot write feedback to {self.where}: {exc}") from exc
        finally:
            conn.close()
        if added:
            return feedback, True
        return settle_repeat(from_row(stored[0]), feedback)

    def feedback(self, trace_id: str) -> list[Feedback]:
        rows = self._read(
            "SELECT data FROM crossroads_feedback WHERE trace_id = ? ORDER BY source", (trace_id,)
        )
        return [from_row(r["data"]) for r in rows]

    def labeled(
        self, since: float | None = None, until: float | None = None
    ) -> list[tuple[dict[str, Any], list[Feedback]]]:
        return group_labeled(self._read(LABELED, spend_range(since, until)))

    def count(self) -> int:
        return int(self._read("SELECT COUNT(*) AS n FROM crossroads_traces")[0]["n"])

    def spend(
        self, by: Sequence[str], since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        sql = spend_sql(check_dimensions(by), SPEND, SPEND_SOURCE)
        rows = self._read(sql, spend_range(since, until))
        for row in rows:  # numeric sums come back as Decimal
            for name in ("prompt_tokens", "completion_tokens"):
                row[name] = int(row[name])
            row["cost"] = float(row["cost"])
        return rows
