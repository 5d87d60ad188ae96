"""What only the PostgreSQL trace store does: reconnecting, NUL characters, its URL."""

from __future__ import annotations

import time

import pytest

from crossroads.config import StoreConfig
from crossroads.exceptions import StoreError
from crossroads.store import open_trace_store
from crossroads.store.postgres import PostgresTraceStore, redact_url
from crossroads.types import Trace


def trace(i: int) -> Trace:
    return Trace(f"t{i:05d}", 1_700_000_000 + i, "auto", "chat", False)


def test_the_writer_reconnects_after_its_connection_is_killed(postgres_url: str) -> None:
    import psycopg

    store = open_trace_store(postgres_url, flush_interval_ms=5)
    assert isinstance(store, PostgresTraceStore)
    store.record(trace(1))
    store.flush()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        (killed,) = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = current_setting('application_name') "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed == 1  # the writer's connection
    for i in range(2, 12):
        store.record(trace(i))
    store.flush(timeout=10)
    assert store.count() == 11
    assert store.stats()["dropped"] == 0 and store.healthy()
    store.close()


def test_a_nul_character_is_kept_as_a_replacement(postgres_url: str) -> None:
    store = PostgresTraceStore(postgres_url, flush_interval_ms=5)
    t = trace(1)
    t.error = "upstream said \x00 here"
    store.record(t)
    store.flush()
    assert store.get("t00001")["error"] == "upstream said \ufffd here"  # type: ignore[index]
    store.close()


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    pytest.importorskip("psycopg")
    url = "postgresql://crossroads:hunter2@127.0.0.1:1/traces"
    store = PostgresTraceStore(url)
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=r"cannot open trace store postgresql://crossroads:\*\*\*@"
    ):
        store.start()
    assert time.monotonic() - started < 10
    store.record(trace(1))  # never raises: counted as dropped
    assert store.stats()["dropped_by_reason"]["write_error"] == 1 and not store.healthy()
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_the_config_accepts_a_postgresql_url() -> None:
    store = StoreConfig(traces="postgresql://u@db.internal/crossroads")
    assert store.traces.startswith("postgresql://")
    with pytest.raises(ValueError, match="postgresql://"):
        StoreConfig(traces="mysql://u@db/x")
