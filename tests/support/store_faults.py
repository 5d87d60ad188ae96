"""Trace stores whose database file misbehaves on purpose."""

from __future__ import annotations

import sqlite3

from crossroads.store.sqlite import SQLiteTraceStore


class FullDiskStore(SQLiteTraceStore):
    """A SQLite store whose file may grow by only ``spare_pages`` pages: writes past that fail
    with SQLITE_FULL, as on a full disk. :meth:`free` gives it room again."""

    def __init__(self, *args, spare_pages: int = 2, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.spare_pages = spare_pages
        self.conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages + self.spare_pages}")
        self.conn = conn
        return conn

    def free(self) -> None:
        """Lift the limit on the writer's connection (the disk has room again)."""
        assert self.conn is not None
        self.conn.execute("PRAGMA max_page_count = 1000000")
