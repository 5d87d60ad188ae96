"""Virtual API keys: a key store (SQLite or PostgreSQL) and the gateway's copy of it."""

from __future__ import annotations

from pathlib import Path

from crossroads.exceptions import ConfigError
from crossroads.keys.base import IssuedKey, KeyRecord, KeyStore, TeamRecord, digest, new_secret
from crossroads.paths import data_dir

__all__ = [
    "IssuedKey",
    "KeyRecord",
    "KeyStore",
    "TeamRecord",
    "digest",
    "new_secret",
    "open_key_store",
]

SCHEMES = "'sqlite', 'sqlite:///path/to/keys.db' or 'postgresql://user@host/database'"


def open_key_store(spec: str) -> KeyStore:
    """The key store of a ``store.keys`` setting (nothing is opened until ``start``)."""
    if spec == "sqlite" or spec.startswith("sqlite:///"):
        from crossroads.keys.sqlite import SQLiteKeyStore

        path = data_dir() / "keys.db" if spec == "sqlite" else Path(spec.removeprefix("sqlite:///"))
        return SQLiteKeyStore(path)
    if spec.startswith(("postgresql://", "postgres://")):
        from crossroads.keys.postgres import PostgresKeyStore

        return PostgresKeyStore(spec)
    raise ConfigError([("store.keys", f"unknown key store {spec!r}: use {SCHEMES}")])
