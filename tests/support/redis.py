"""The machine's Redis server for tests: its URL, a skip when it does not answer, and a unique
key prefix per test whose keys are deleted afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

REDIS_URL = os.environ.get("CROSSROADS_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> None:
    """Skip unless a Redis server answers at ``REDIS_URL``."""
    import socket
    from urllib.parse import urlparse

    pytest.importorskip("hiredis", reason='the redis backend needs pip install "crossroads[redis]"')
    pytest.importorskip("redis", reason="the tests read Redis with redis-py (the dev extra)")
    url = urlparse(REDIS_URL)
    try:
        socket.create_connection((url.hostname, url.port or 6379), timeout=0.5).close()
    except OSError:
        pytest.skip(f"no Redis server at {REDIS_URL}")


def unique_prefix() -> Iterator[str]:
    """A key prefix of its own (skipped without Redis); its keys are deleted afterwards.
    Modules wrap it as their ``prefix`` fixture."""
    redis_or_skip()
    import redis

    name = f"crossroads-test-{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)
    client.close()
