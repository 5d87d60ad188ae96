"""The SQLite key store (default: ``keys.db`` in the data dir).

Its revision is also kept in a small file beside the database (``keys.db.revision``, 8
bytes), which every gateway process maps into memory: checking for a change before a request
is one memory read, with no system call, and a change made by ``crossroads keys`` or any
replica's admin API is seen by every process on the host at its next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from crossroads.exceptions import StoreError
from crossroads.keys.base import SCHEMA, Execute, KeyStore

BUSY_TIMEOUT_S = 5.0  # key changes are rare and short: a writer waits this long for the lock


class SQLiteKeyStore(KeyStore):
    """Keys and teams in a SQLite file shared by every process on the host (WAL)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.where = str(self.path)
        self.revision_path = self.path.with_name(self.path.name + ".revision")
        self._map: mmap.mmap | None = None

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA.format(**self.types))
            return conn
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open key store {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection, write: bool) -> Iterator[Execute]:
        try:
            # IMMEDIATE: writers queue for the lock before they read what they will change.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield lambda sql, args: conn.execute(sql, args).fetchall()
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except sqlite3.Error as exc:
            raise StoreError(f"key store {self.path}: {exc}") from exc

    def start(self, watch: bool = False) -> None:
        super().start()
        try:
            fd = os.open(self.revision_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size < 8:
                    os.pwrite(fd, bytes(8), 0)
                self._map = mmap.mmap(fd, 8, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot open {self.revision_path}: {exc}") from exc
        # A writer that died between its commit and its file write left the file behind; a
        # database replaced by an older or new one is behind the file: move it past.
        with self._run(write=True) as execute:
            execute(
                "UPDATE crossroads_key_state SET revision = ? WHERE id = 1 AND revision < ?",
                (self.revision() + 1, self.revision()),
            )
            ((revision,),) = execute("SELECT revision FROM crossroads_key_state WHERE id = 1", ())
        self._published(int(revision))

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        super().close()

    def revision(self) -> int:
        if self._map is None:
            return -1
        return int.from_bytes(self._map[:8], "little")

    def _published(self, revision: int) -> None:
        # The file only grows: a late or healing write never hides a newer revision.
        try:
            fd = os.open(self.revision_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if int.from_bytes(os.pread(fd, 8, 0).ljust(8, b"\0"), "little") < revision:
                    os.pwrite(fd, revision.to_bytes(8, "little"), 0)
            finally:
                os.close(fd)  # releases the lock
        except OSError as exc:
            raise StoreError(
                f"the change is saved, but gateways were not told ({self.revision_path}: {exc}); "
                "they see it once the file is writable and another change is made"
            ) from exc
