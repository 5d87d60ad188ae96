"""A key store of each kind: SQLite in a temporary directory, PostgreSQL in a fresh schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crossroads.keys import KeyStore, open_key_store


@pytest.fixture(params=["sqlite", "postgresql"])
def key_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ``store.keys`` setting of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/keys.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def key_store(key_spec: str) -> Iterator[KeyStore]:
    store = open_key_store(key_spec)
    store.start()
    yield store
    store.close()
