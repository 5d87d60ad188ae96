"""The trace writer every database store shares: the request path encodes a trace and appends
its row to a bounded deque, a writer thread drains it in batches, and whatever cannot be
written is dropped and counted."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from typing import Any

import orjson

from crossroads.exceptions import StoreError
from crossroads.store.base import DROP_REASONS, TraceStore, store_stats, trace_json
from crossroads.types import Trace

log = logging.getLogger("crossroads.store")

PRUNE_EVERY_S = 3600
WRITER_NICE = 10  # the writer's share of a contended core stays above its few percent
# A write the database refuses (locked, full, unreachable) is tried again after each pause,
# then its traces are dropped.
BACKOFF_S = (0.1, 0.3, 0.6)
UNHEALTHY_AFTER_S = 30  # writes failing this long make the store unhealthy (/ready says 503)
LOG_EVERY_S = 60  # each kind of write error is logged at most this often
CLOSE_GRACE_S = 2.0  # close waits this long past the drain bound for a writer stuck in a call
BAD_TRACE = "dropped trace %s: it cannot be stored (%r)"

Row = tuple[Any, Any, bytes]


class BatchedTraceStore(TraceStore):
    """Traces written by a background thread in batches; subclasses say where rows go.

    The request path encodes the trace (its JSON) and appends the row to a deque (no lock, no
    wake-up), up to ``max_queue`` traces; beyond that a trace is dropped. Encoding there, not
    in the writer, keeps the writer's time holding the GIL short (binding rows; the database
    call releases it), so the event loop never waits for the GIL behind a batch being
    encoded (nor behind a niced writer preempted while it holds the GIL), and a queued
    trace is one row of bytes, not a tree of objects for the cyclic GC to scan. The writer wakes every ``flush_interval_ms``,
    drains what has accumulated and writes it in transactions of at most ``batch_size`` rows.
    A trace that cannot be serialised or inserted is dropped alone; a write the database
    refuses (locked, full, unreachable) is retried for a few seconds, then dropped.
    :meth:`close` drains for at most ``drain_timeout_s``. Every dropped trace is counted by
    reason (:meth:`stats`).

    :meth:`get` finds a trace still queued or being written as well as a written one, so that
    feedback sent right after an answer finds its trace.

    Subclasses implement :meth:`_connect`, :meth:`_insert_rows`, :meth:`_store_fault`,
    :meth:`_delete_before`, :meth:`_get_written` and the reads; ``where`` names the database
    in messages and ``call_timeout_s`` bounds one call to it.
    """

    where = "the trace store"
    call_timeout_s = 0.5

    def __init__(
        self,
        flush_interval_ms: int = 200,
        batch_size: int = 500,
        retention_days: float | None = None,
        max_queue: int = 100_000,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self.flush_interval_ms = flush_interval_ms
        self.batch_size = batch_size
        self.retention_days = retention_days
        self.max_queue = max_queue
        self.drain_timeout_s = drain_timeout_s
        self._queue: deque[Row] = deque()
        self._writing: list[Row] = []  # the batch the writer holds, until it is written
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline: float | None = None  # set by close: the drain ends then
        self._conn: Any = None  # the writer thread's connection
        self._appended = 0  # written only by request threads
        self._queue_full = 0  # written only by request threads
        self._unencodable = 0  # written only by request threads
        self._written = 0  # written only by the writer thread
        # Written by the writer thread (and by close once it has stopped); every key is
        # present from the start so that stats() may copy it from another thread.
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._failed_since: float | None = None
        self._cannot_open = False
        self._logged_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    # ------------------------------------------------------------------ what subclasses give

    def _connect(self) -> Any:
        """A new connection with the schema in place; raises :class:`StoreError`."""
        raise NotImplementedError

    def _insert_rows(self, conn: Any, rows: list[Row]) -> None:
        """Insert ``rows`` in one transaction: all of them or none."""
        raise NotImplementedError

    def _store_fault(self, exc: Exception) -> bool:
        """Whether ``exc`` is the database's fault (locked, full, gone: worth a retry) rather
        than a row's (a value it cannot bind, a constraint it breaks)."""
        raise NotImplementedError

    def _delete_before(self, conn: Any, before: float) -> int:
        """Delete traces created before ``before`` (unix seconds); how many went."""
        raise NotImplementedError

    def _get_written(self, trace_id: str) -> dict[str, Any] | None:
        """The written trace with this id."""
        raise NotImplementedError

    def _usable(self, conn: Any) -> bool:
        """Whether ``conn`` survived a fault (else the next try opens a new one)."""
        return True

    def _encode(self, trace: Trace) -> Row:
        return (trace.trace_id, trace.created_at, trace_json(trace))

    # ------------------------------------------------------------------ the request path

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
        try:
            row = self._encode(trace)
        except Exception as exc:
            self._unencodable += 1
            self._log("bad_trace", BAD_TRACE, trace.trace_id, exc)
            return
        self._appended += 1
        self._queue.append(row)

    def get(self, trace_id: str) -> dict[str, Any] | None:
        """The trace with this id: queued, being written, or written (looked for in the
        order a trace moves through them, so one in motion is not missed between two)."""
        # list() copies the deque in one step under the GIL; iterating it in Python would
        # fail if the request path appended meanwhile.
        for row in reversed(list(self._queue)):
            if row[0] == trace_id:
                return orjson.loads(row[2])  # type: ignore[no-any-return]
        for row in list(self._writing):
            if row[0] == trace_id:
                return orjson.loads(row[2])  # type: ignore[no-any-return]
        return self._get_written(trace_id)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        try:
            _lower_priority()
            try:
                self._loop()
            finally:
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        self._conn.close()
                    self._conn = None
        except Exception:
            log.exception("the trace writer for %s stopped", self.where)

    def _loop(self) -> None:
        wait = self.flush_interval_ms / 1000
        pruned_at = float("-inf")
        while True:
            if self.retention_days is not None and time.monotonic() - pruned_at > PRUNE_EVERY_S:
                pruned_at = time.monotonic()
                self._prune(time.time() - self.retention_days * 86400)
            stopping = self._stop.wait(wait)
            while self._queue:
                if self._past_deadline():
                    self._drop_queued("shutdown")
                    break
                batch: list[Row] = []
                self._writing = batch  # readers (get) see each trace here once it is popped
                for _ in range(min(self.batch_size, len(self._queue))):
                    batch.append(self._queue[0])  # in the batch before it leaves the queue
                    self._queue.popleft()
                try:
                    self._write(batch)
                except Exception as exc:  # a bug, not a fault of the database or of one trace
                    self._dropped["write_error"] += len(batch)
                    self._log("write_error", "dropped %d traces: %r", len(batch), exc)
                finally:
                    self._writing = []
            if stopping:
                return

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _write(self, batch: list[Row]) -> None:
        """Write ``batch``; whatever cannot be written is dropped and counted."""
        rows = batch
        for attempt, pause in enumerate((*BACKOFF_S, None), 1):
            if not rows:
                return
            try:
                self._insert(self._connection(), rows)
            except Exception as exc:  # the database refuses: locked, busy, full, gone
                if not (isinstance(exc, StoreError) or self._store_fault(exc)):
                    raise
                if self._failed_since is None:
                    self._failed_since = time.monotonic()
                if self._conn is not None and not self._usable(self._conn):
                    with contextlib.suppress(Exception):
                        self._conn.close()
                    self._conn = None
                log.debug("writing traces to %s failed: %s", self.where, exc)
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
                    self.where,
                    exc,
                )
                return
            self._failed_since = None
            return

    def _insert(self, conn: Any, rows: list[Row]) -> None:
        """Insert ``rows``, removing each from the list once it is written or refused. A fault
        of the database itself propagates, with the rows still to write left in the list."""
        try:
            self._insert_rows(conn, rows)
        except Exception as exc:
            if self._store_fault(exc):
                raise
        else:
            self._written += len(rows)
            rows.clear()
            return
        # One row the database refuses fails its whole transaction: find it, row by row.
        rows.reverse()
        while rows:
            try:
                self._insert_rows(conn, rows[-1:])
                self._written += 1
            except Exception as exc:
                if self._store_fault(exc):
                    rows.reverse()
                    raise
                self._drop_bad(rows[-1][0], exc)
            rows.pop()

    def _drop_bad(self, trace_id: Any, exc: Exception) -> None:
        self._dropped["bad_trace"] += 1
        self._log("bad_trace", BAD_TRACE, trace_id, exc)

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

    def _prune(self, before: float) -> None:
        """Delete traces created before ``before``; a failure waits an hour."""
        try:
            deleted = self._delete_before(self._connection(), before)
            if deleted:
                log.info("deleted %d traces past store.retention_days", deleted)
        except Exception as exc:
            log.error("deleting old traces from %s failed: %s", self.where, exc)

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
        thread.join(timeout=self.drain_timeout_s + self.call_timeout_s + CLOSE_GRACE_S)
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
        dropped["bad_trace"] += self._unencodable
        thread = self._thread
        return store_stats(
            queued=max(0, self._appended - self._settled()),
            written=self._written,
            dropped=dropped,
            writer_alive=thread is not None and thread.is_alive(),
        )


def _lower_priority() -> None:
    """Let the request path have the core first: the writer thread is niced (Linux keeps a
    nice value per thread). It only needs a few percent of a core to keep up."""
    # Not Linux, or not allowed: the writer runs at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
