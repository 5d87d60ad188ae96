"""The PostgreSQL key store: gateways on any number of hosts share one set of keys.

A change is announced with ``NOTIFY crossroads_keys`` in the transaction that makes it. Each
gateway keeps one listening connection in a thread, which records the newest revision (what
the request path compares with, a memory read) and confirms it in
``crossroads_key_replicas``. The writer (``crossroads keys ...``, the admin API) returns once
every live gateway has confirmed, so a revoked or rotated key is refused by every replica from
the moment the command returns; a gateway that cannot be reached is named in a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from crossroads.exceptions import CrossroadsError, StoreError
from crossroads.keys.base import SCHEMA, Execute, KeyStore
from crossroads.store.postgres import connect, create_schema, redact_url

log = logging.getLogger("crossroads.keys")

CHANNEL = "crossroads_keys"
POLL_S = 0.5  # the listener also reads the revision this often (a lost notification, a stop)
HEARTBEAT_S = 5.0  # a gateway confirms it is alive this often
LIVE_S = 15.0  # a gateway silent this long is not waited for
CONFIRM_TIMEOUT_S = 5.0  # a writer waits this long for every live gateway to confirm
# A gateway whose listener has not reached the database for this long stops trusting its copy
# (virtual keys get 503): by then writers may have stopped waiting for it (LIVE_S after its last
# confirmation, which is at most HEARTBEAT_S older than its last contact).
TRUST_S = LIVE_S - HEARTBEAT_S - 1
RECONNECT_S = (0.5, 1, 2, 5)
REPLICAS = """
CREATE TABLE IF NOT EXISTS crossroads_key_replicas (
    replica TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL
);
"""
CONFIRM = (
    "INSERT INTO crossroads_key_replicas (replica, revision, seen_at) "
    "VALUES (%s, %s, extract(epoch from now())) ON CONFLICT (replica) DO UPDATE "
    "SET revision = excluded.revision, seen_at = excluded.seen_at"
)
UNCONFIRMED = (
    "SELECT replica FROM crossroads_key_replicas "
    "WHERE revision < %s AND seen_at > extract(epoch from now()) - %s ORDER BY replica"
)
REVISION = "SELECT revision FROM crossroads_key_state WHERE id = 1"


class PostgresKeyStore(KeyStore):
    """Keys and teams in PostgreSQL; ``start(watch=True)`` listens for changes (gateways)."""

    types = {"int": "BIGINT", "blob": "BYTEA", "real": "DOUBLE PRECISION"}

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.where = redact_url(url)
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._seen = -1
        self._contact = float("-inf")  # when the listener last read the revision (monotonic)
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    def _connect(self) -> Any:
        conn = connect(self.url, "key store")
        try:
            create_schema(conn, SCHEMA.format(**self.types) + REPLICAS)
        except Exception as exc:
            conn.close()
            raise StoreError(f"cannot create the key tables in {self.where}: {exc}") from exc
        return conn

    def _usable(self, conn: Any) -> bool:
        return not (conn.closed or conn.broken)

    @contextlib.contextmanager
    def _transaction(self, conn: Any, write: bool) -> Iterator[Execute]:
        import psycopg

        def execute(sql: str, args: Any) -> list[tuple[Any, ...]]:
            cur.execute(sql.replace("?", "%s"), args)
            return cur.fetchall() if cur.description else []

        try:
            with conn.transaction(), conn.cursor() as cur:
                yield execute
        except psycopg.Error as exc:
            raise StoreError(f"key store {self.where}: {exc}") from exc

    def _publish(self, execute: Execute, revision: int) -> None:
        execute("SELECT pg_notify(?, ?)", (CHANNEL, str(revision)))

    def _published(self, revision: int) -> None:
        """Wait until every live gateway has confirmed ``revision`` (bounded)."""
        self._seen = max(self._seen, revision)
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while True:
            with self._lock:
                rows = self._connection().execute(UNCONFIRMED, (revision, LIVE_S)).fetchall()
            if not rows:
                return
            if time.monotonic() > deadline:
                log.warning(
                    "key store revision %d is saved, but gateways %s have not confirmed it "
                    "within %s s; they apply it once they reach %s again",
                    revision,
                    ", ".join(r[0] for r in rows),
                    CONFIRM_TIMEOUT_S,
                    self.where,
                )
                return
            time.sleep(0.005)

    def revision(self) -> int:
        return self._seen

    def trusted(self) -> bool:
        return self._watcher is None or time.monotonic() - self._contact < TRUST_S

    def start(self, watch: bool = False) -> None:
        super().start()
        with self._run() as execute:
            ((revision,),) = execute(REVISION, ())
        self._seen = int(revision)
        if watch and self._watcher is None:
            self._stop.clear()
            ready = threading.Event()
            self._watcher = threading.Thread(
                target=self._watch, args=(ready,), name="crossroads-keys", daemon=True
            )
            self._watcher.start()
            ready.wait(CONFIRM_TIMEOUT_S)  # listening before the first request

    def close(self) -> None:
        watcher = self._watcher
        if watcher is not None:
            self._stop.set()
            watcher.join(POLL_S + 5)
            self._watcher = None
        super().close()

    # ------------------------------------------------------------------ the listener thread

    def _watch(self, ready: threading.Event) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                conn = connect(self.url, "key store")
            except CrossroadsError as exc:
                pause = RECONNECT_S[min(failures, len(RECONNECT_S) - 1)]
                failures += 1
                log.error("key store listener: %s; retrying in %s s", exc, pause)
                self._stop.wait(pause)
                continue
            try:
                failures = 0
                self._listen(conn, ready)
            except Exception as exc:  # connection lost: reconnect, read the revision again
                if not self._stop.is_set():
                    log.error("key store listener lost %s: %s; reconnecting", self.where, exc)
            finally:
                with contextlib.suppress(Exception):
                    if not conn.closed and not conn.broken:
                        conn.execute(
                            "DELETE FROM crossroads_key_replicas WHERE replica = %s",
                            (self.replica,),
                        )
                    conn.close()

    def _listen(self, conn: Any, ready: threading.Event) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        confirmed, confirmed_at = -1, float("-inf")
        while not self._stop.is_set():
            (revision,) = conn.execute(REVISION).fetchone()
            self._seen = max(self._seen, int(revision))  # requests refresh before answering
            self._contact = time.monotonic()
            if revision != confirmed or time.monotonic() - confirmed_at > HEARTBEAT_S:
                conn.execute(CONFIRM, (self.replica, revision))
                confirmed, confirmed_at = revision, time.monotonic()
            ready.set()
            for _ in conn.notifies(timeout=POLL_S, stop_after=1):
                pass
