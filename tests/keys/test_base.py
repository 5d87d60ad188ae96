"""The key store's contract, on SQLite and PostgreSQL: keys are kept hashed, created, listed,
rotated and revoked; teams; every change moves the revision gateways watch."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from crossroads.exceptions import ConfigError, ConflictError, InvalidRequestError, NotFoundError
from crossroads.keys import KeyStore, open_key_store
from crossroads.keys.base import PREFIX


def test_a_key_is_random_and_only_its_digest_is_kept(key_store: KeyStore, key_spec: str) -> None:
    issued = key_store.create_key("ci", policy={"rpm": 60, "metadata": {"tier": "gold"}})
    other = key_store.create_key("bot")
    assert issued.secret.startswith(PREFIX) and len(issued.secret) == len(PREFIX) + 43
    assert issued.secret != other.secret
    record = key_store.get_key("ci")
    assert record.digest == hashlib.sha256(issued.secret.encode()).digest()
    assert record.last4 == issued.secret[-4:] and record.policy == {
        "rpm": 60,
        "metadata": {"tier": "gold"},
    }
    shown = record.public()
    assert shown["display"] == f"cr-...{issued.secret[-4:]}" and shown["status"] == "active"
    assert issued.secret not in repr(shown) and "digest" not in shown
    assert issued.public()["key"] == issued.secret  # the one time the value is shown
    if key_spec.startswith("sqlite"):  # nowhere in the file either
        path = Path(key_spec.removeprefix("sqlite:///"))
        assert issued.secret.encode() not in path.read_bytes()


def test_rotate_keeps_the_key_and_changes_its_value(key_store: KeyStore) -> None:
    first = key_store.create_key("ci", policy={"tpm": 1000})
    before = key_store.revision()
    rotated = key_store.rotate_key(first.record.id)
    assert rotated.record.id == first.record.id and rotated.record.policy == {"tpm": 1000}
    assert rotated.secret != first.secret and rotated.record.digest != first.record.digest
    assert rotated.record.rotated_at is not None
    assert key_store.revision() > before
    assert [k.digest for k in key_store.list_keys()] == [rotated.record.digest]


def test_revoked_keys_are_listed_only_when_asked(key_store: KeyStore) -> None:
    key = key_store.create_key("ci").record
    key_store.create_key("bot")
    revoked = key_store.revoke_key("ci")
    assert revoked.revoked_at is not None and revoked.public()["status"] == "revoked"
    assert key_store.revoke_key(key.id).revoked_at == revoked.revoked_at  # twice is harmless
    assert [k.name for k in key_store.list_keys()] == ["bot"]
    assert [k.name for k in key_store.list_keys(include_revoked=True)] == ["ci", "bot"]
    with pytest.raises(ConflictError, match="revoked"):
        key_store.rotate_key(key.id)
    assert key_store.create_key("ci").record.id != key.id  # the name is free again
    with pytest.raises(NotFoundError, match="crossroads keys list"):
        key_store.get_key("nope")


def test_names_policies_and_teams_are_checked(key_store: KeyStore) -> None:
    key_store.create_key("ci")
    with pytest.raises(ConflictError, match="already named 'ci'"):
        key_store.create_key("ci")
    with pytest.raises(InvalidRequestError, match="invalid key name"):
        key_store.create_key("bad name\n")
    with pytest.raises(InvalidRequestError, match=r"rpm: Input should be greater than or equal"):
        key_store.create_key("x", policy={"rpm": 0})
    with pytest.raises(InvalidRequestError, match="Extra inputs"):
        key_store.create_key("x", policy={"rmp": 5})
    with pytest.raises(InvalidRequestError, match="unknown team 'search'"):
        key_store.create_key("x", team="search")
    assert key_store.create_key("x", team="search", config_teams={"search"}).record.team == "search"


def test_teams_are_created_replaced_listed_and_deleted(key_store: KeyStore) -> None:
    team = key_store.put_team("search", {"budgets": [{"usd": 5, "period": "day"}]})
    assert team.policy == {"budgets": [{"usd": 5.0, "period": "day"}]}
    key_store.put_team("search", {"rpm": 100})
    assert key_store.get_team("search").policy == {"rpm": 100}
    key = key_store.create_key("ci", team="search")
    with pytest.raises(ConflictError, match="1 active keys"):
        key_store.delete_team("search")
    key_store.revoke_key(key.record.id)
    key_store.delete_team("search")
    assert key_store.list_teams() == []
    with pytest.raises(NotFoundError):
        key_store.delete_team("search")


def test_changes_since_a_revision_hold_only_what_changed(key_store: KeyStore) -> None:
    everything = key_store.changes(-1)
    assert everything.keys == [] and everything.teams == []
    a = key_store.create_key("a").record
    mark = key_store.changes(-1).revision
    b = key_store.create_key("b").record
    key_store.revoke_key("a")
    key_store.put_team("t")
    later = key_store.changes(mark)
    assert sorted(k.id for k in later.keys) == sorted([a.id, b.id])
    assert [t.name for t in later.teams] == ["t"]
    assert later.revision == key_store.revision() == mark + 3
    assert key_store.changes(later.revision).keys == []


def test_a_second_store_on_the_same_database_sees_every_change(key_spec: str) -> None:
    writer, reader = open_key_store(key_spec), open_key_store(key_spec)
    writer.start()
    reader.start(watch=True)
    try:
        key = writer.create_key("ci", expires_at=time.time() + 60)
        deadline = time.monotonic() + 5
        while reader.revision() != writer.revision() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.revision() == writer.revision()
        (seen,) = reader.changes(-1).keys
        assert seen == key.record
    finally:
        writer.close()
        reader.close()


def test_an_unknown_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown key store 'redis://x'"):
        open_key_store("redis://x")
