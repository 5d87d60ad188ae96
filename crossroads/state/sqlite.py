"""State in a SQLite file: shared by every worker process on one machine and kept across
restarts. Each operation is one ``BEGIN IMMEDIATE`` transaction (SQLite serialises writers
across processes), run in one thread per process so the event loop never waits on the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from crossroads.paths import data_dir
from crossroads.state.base import (
    SETTLED_TTL_S,
    Admission,
    Budget,
    Settlement,
    StateBackend,
    Window,
    first_fitting,
)

T = TypeVar("T")
FOREVER = 1e300
SWEEP_EVERY_S = 60.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (key TEXT PRIMARY KEY, used INTEGER NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS budgets (key TEXT PRIMARY KEY, spent INTEGER NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS holds (key TEXT NOT NULL, id TEXT NOT NULL, amount INTEGER NOT NULL,
    until REAL NOT NULL, PRIMARY KEY (key, id));
CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (key TEXT NOT NULL, field TEXT NOT NULL, value INTEGER NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (key, field));
CREATE TABLE IF NOT EXISTS settled (key TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS settled_expires ON settled (expires);
"""


class SQLiteState(StateBackend):
    """One file (``state.db`` in the data dir by default); WAL mode."""

    name = "sqlite"

    def __init__(self, path: Path, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._swept = 0.0

    # ------------------------------------------------------------------ plumbing

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="crossroads-state")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, fn)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            self._conn = conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            now = time.time()
            if now - self._swept >= SWEEP_EVERY_S:
                self._swept = now
                for table, column in (
                    ("windows", "expires"),
                    ("budgets", "expires"),
                    ("holds", "until"),
                    ("records", "expires"),
                    ("counters", "expires"),
                    ("settled", "expires"),
                ):
                    conn.execute(f"DELETE FROM {table} WHERE {column} <= ?", (now,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    # ------------------------------------------------------------------ operations

    async def admit(
        self,
        windows: Sequence[Window],
        budgets: Sequence[Budget],
        costs: Sequence[int],
        hold: str,
        hold_until: float,
        now: float,
    ) -> Admission:
        def run(conn: sqlite3.Connection) -> Admission:
            used: list[int] = []
            for i, w in enumerate(windows):
                count = _window(conn, w.key, now)
                if count + w.cost > w.limit:
                    return Admission("window", window=i, window_used=[*used, count])
                used.append(count)
            spent = [_used(conn, b.key, now) for b in budgets]
            choice = first_fitting(costs, spent, budgets)
            if choice < 0:
                return Admission("budget", window_used=used, budget_used=spent)
            for w in windows:
                conn.execute(
                    "INSERT INTO windows VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "used = CASE WHEN expires <= ? THEN excluded.used ELSE used + excluded.used END, "
                    "expires = CASE WHEN expires <= ? THEN excluded.expires ELSE expires END",
                    (w.key, w.cost, now + w.ttl_s, now, now),
                )
            for b in budgets:
                expires = FOREVER if b.ttl_s is None else now + b.ttl_s
                conn.execute(
                    "INSERT INTO budgets VALUES (?, 0, ?) ON CONFLICT (key) DO UPDATE SET "
                    "expires = excluded.expires",
                    (b.key, expires),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO holds VALUES (?, ?, ?, ?)",
                    (b.key, hold, costs[choice], hold_until),
                )
            after = [u + w.cost for u, w in zip(used, windows, strict=True)]
            return Admission(None, choice=choice, window_used=after, budget_used=spent)

        return await self._run(run)

    async def settle(self, settlements: Sequence[Settlement], now: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for s in settlements:
                if (
                    s.marker
                    and not conn.execute(  # set, or renewed if expired; else applied already
                        "INSERT INTO settled VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                        "expires = excluded.expires WHERE expires <= ?",
                        (s.marker, now + SETTLED_TTL_S, now),
                    ).rowcount
                ):
                    continue
                for b in s.budgets:
                    conn.execute("DELETE FROM holds WHERE key = ? AND id = ?", (b.key, s.hold))
                    _expire_budget(conn, b.key, now)
                    conn.execute(
                        "INSERT INTO budgets VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                        "spent = spent + excluded.spent, expires = excluded.expires",
                        (b.key, s.amount, FOREVER if b.ttl_s is None else now + b.ttl_s),
                    )
                for key, delta in s.windows:
                    conn.execute(
                        "UPDATE windows SET used = used + ? WHERE key = ? AND expires > ?",
                        (delta, key, now),
                    )

        await self._run(run)

    async def budget_used(self, keys: Sequence[str], now: float) -> list[int]:
        return await self._run(lambda conn: [_used(conn, key, now) for key in keys])

    async def put_record(self, key: str, value: str, ttl_s: float) -> None:
        await self._run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?)", (key, value, time.time() + ttl_s)
            )
        )

    async def get_records(self, keys: Sequence[str]) -> list[str | None]:
        def run(conn: sqlite3.Connection) -> list[str | None]:
            now = time.time()
            out = []
            for key in keys:
                row = conn.execute(
                    "SELECT value FROM records WHERE key = ? AND expires > ?", (key, now)
                ).fetchone()
                out.append(row[0] if row else None)
            return out

        return await self._run(run)

    async def add_counters(self, updates: dict[str, dict[str, int]], ttl_s: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = time.time()
            for key, deltas in updates.items():
                conn.execute("DELETE FROM counters WHERE key = ? AND expires <= ?", (key, now))
                conn.executemany(
                    "INSERT INTO counters VALUES (?, ?, ?, ?) ON CONFLICT (key, field) DO UPDATE "
                    "SET value = value + excluded.value",
                    [(key, name, delta, 0) for name, delta in deltas.items()],
                )
                conn.execute("UPDATE counters SET expires = ? WHERE key = ?", (now + ttl_s, key))

        await self._run(run)

    async def read_counters(self, keys: Sequence[str]) -> list[dict[str, int]]:
        def run(conn: sqlite3.Connection) -> list[dict[str, int]]:
            now = time.time()
            return [
                dict(
                    conn.execute(
                        "SELECT field, value FROM counters WHERE key = ? AND expires > ?",
                        (key, now),
                    ).fetchall()
                )
                for key in keys
            ]

        return await self._run(run)

    async def aclose(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
            executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _window(conn: sqlite3.Connection, key: str, now: float) -> int:
    row = conn.execute(
        "SELECT used FROM windows WHERE key = ? AND expires > ?", (key, now)
    ).fetchone()
    return int(row[0]) if row else 0


def _expire_budget(conn: sqlite3.Connection, key: str, now: float) -> None:
    conn.execute("DELETE FROM budgets WHERE key = ? AND expires <= ?", (key, now))
    conn.execute("DELETE FROM holds WHERE key = ? AND until <= ?", (key, now))


def _used(conn: sqlite3.Connection, key: str, now: float) -> int:
    _expire_budget(conn, key, now)
    row = conn.execute(
        "SELECT (SELECT COALESCE(SUM(spent), 0) FROM budgets WHERE key = ?) + "
        "(SELECT COALESCE(SUM(amount), 0) FROM holds WHERE key = ?)",
        (key, key),
    ).fetchone()
    return int(row[0])


def open_sqlite(spec: str, **settings: Any) -> SQLiteState:
    """``state.backend: sqlite`` (``state.db`` in the data dir), ``sqlite:///relative.db`` or
    ``sqlite:////absolute/path.db``."""
    path = data_dir() / "state.db" if spec == "sqlite" else Path(spec.removeprefix("sqlite:///"))
    return SQLiteState(path)
