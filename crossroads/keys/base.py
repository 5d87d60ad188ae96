"""The key store: virtual API keys and teams in a SQL database, with a revision number.

A key is a random 256-bit token with the prefix ``cr-``; the store keeps only its SHA-256
digest and its last four characters (for display). A fast hash is enough: the token has 256
bits of entropy, so no guess or dictionary gets anywhere near it and a slow KDF would only
slow every request. Every change (create, rotate, revoke, a team's policy) bumps the store's
revision in the same transaction and publishes it (:meth:`KeyStore._publish`); gateways
compare it with the revision they loaded (:class:`~crossroads.keys.ring.KeyRing`) before
they authenticate a request.

The SQL is written once with ``?`` placeholders; a backend gives the connection, the column
types and how a new revision reaches the gateways.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from crossroads.config.tenants import PolicyConfig
from crossroads.exceptions import ConflictError, InvalidRequestError, NotFoundError

PREFIX = "cr-"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:/-]{0,127}")
SCHEMA = """
CREATE TABLE IF NOT EXISTS crossroads_key_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision {int} NOT NULL
);
INSERT INTO crossroads_key_state (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS crossroads_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    team TEXT,
    policy TEXT NOT NULL,
    digest {blob} NOT NULL UNIQUE,
    last4 TEXT NOT NULL,
    created_at {real} NOT NULL,
    rotated_at {real},
    revoked_at {real},
    expires_at {real},
    revision {int} NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS crossroads_keys_active_name
    ON crossroads_keys (name) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS crossroads_keys_revision ON crossroads_keys (revision);
CREATE TABLE IF NOT EXISTS crossroads_teams (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
"""
KEY_COLUMNS = (
    "id, name, team, policy, digest, last4, created_at, rotated_at, revoked_at, expires_at, "
    "revision"
)
BUMP = "UPDATE crossroads_key_state SET revision = revision + 1 WHERE id = 1 RETURNING revision"

Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def new_secret() -> str:
    """A new API key: ``cr-`` and 256 random bits (43 URL-safe characters)."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """What the store keeps of a key, and what a gateway looks a presented key up by."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key as the store holds it (never its value: ``last4`` is for display)."""

    id: str
    name: str
    team: str | None
    policy: dict[str, Any]
    digest: bytes
    last4: str
    created_at: float
    rotated_at: float | None = None
    revoked_at: float | None = None
    expires_at: float | None = None
    revision: int = 0

    def usable(self, now: float) -> bool:
        """Not revoked and not expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def public(self) -> dict[str, Any]:
        """The key as the CLI and the admin API show it: everything but its digest."""
        return {
            "id": self.id,
            "object": "crossroads.key",
            "name": self.name,
            "team": self.team,
            "policy": self.policy,
            "display": f"{PREFIX}...{self.last4}",
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
            "revoked_at": self.revoked_at,
            "expires_at": self.expires_at,
            "status": _status(self),
        }


def _status(key: KeyRecord) -> str:
    if key.revoked_at is not None:
        return "revoked"
    return "active" if key.usable(time.time()) else "expired"


@dataclass(frozen=True, slots=True)
class TeamRecord:
    """A team kept in the store: its policy applies to all its keys together."""

    name: str
    policy: dict[str, Any]
    created_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        return {
            "object": "crossroads.team",
            "name": self.name,
            "policy": self.policy,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created or rotated: the only time its value is known."""

    record: KeyRecord
    secret: str

    def public(self) -> dict[str, Any]:
        return {**self.record.public(), "key": self.secret}


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in the store after a revision: the keys changed since, every team."""

    revision: int
    keys: list[KeyRecord]
    teams: list[TeamRecord]


def check_policy(policy: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """``policy`` validated as a :class:`PolicyConfig`, in its compact JSON form."""
    try:
        parsed = PolicyConfig.model_validate(policy or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'policy'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidRequestError(
            f"invalid policy for {what}: {problems}", param="policy"
        ) from None
    dumped: dict[str, Any] = parsed.model_dump(mode="json", exclude_defaults=True)
    return dumped


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidRequestError(
            f"invalid {what} name {name!r}: use 1 to 128 letters, digits and _.@:/- "
            "starting with a letter or digit",
            param="name",
        )
    return name


class KeyStore:
    """Keys and teams in a SQL database; every method runs one short transaction.

    Thread-safe (one connection behind a lock): the gateway calls it from worker threads.
    """

    where = "the key store"
    types = {"int": "INTEGER", "blob": "BLOB", "real": "REAL"}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Any = None

    # ------------------------------------------------------------------ what backends give

    def _connect(self) -> Any:
        """A new connection with the schema in place; raises :class:`StoreError`."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _transaction(self, conn: Any, write: bool) -> Iterator[Execute]:
        """A transaction on ``conn``; yields ``execute(sql, args) -> rows``."""
        raise NotImplementedError
        yield

    def _publish(self, execute: Execute, revision: int) -> None:
        """Tell gateways about ``revision`` inside the transaction that made it."""

    def _published(self, revision: int) -> None:
        """Tell gateways about ``revision`` once its transaction committed."""

    def revision(self) -> int:
        """The newest revision this process knows of: cheap, called before every request."""
        raise NotImplementedError

    def trusted(self) -> bool:
        """Whether :meth:`revision` is known to be current (cheap: called per request)."""
        return True

    def start(self, watch: bool = False) -> None:
        """Open the database (creating the tables); with ``watch`` (a gateway), whatever
        keeps :meth:`revision` current."""
        with self._lock:
            self._connection()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None

    def _usable(self, conn: Any) -> bool:
        return True

    # ------------------------------------------------------------------ plumbing

    def _connection(self) -> Any:
        if self._conn is not None and not self._usable(self._conn):
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @contextlib.contextmanager
    def _run(self, write: bool = False) -> Iterator[Execute]:
        with self._lock, self._transaction(self._connection(), write) as execute:
            yield execute

    def _change(self, change: Callable[[Execute, int, float], Any]) -> Any:
        """Run ``change(execute, new_revision, now)`` in a write transaction that bumps the
        revision, then publish the revision."""
        with self._run(write=True) as execute:
            ((revision,),) = execute(BUMP, ())
            result = change(execute, revision, time.time())
            self._publish(execute, revision)
        self._published(revision)
        return result

    # ------------------------------------------------------------------ keys

    def create_key(
        self,
        name: str,
        team: str | None = None,
        policy: dict[str, Any] | None = None,
        expires_at: float | None = None,
        config_teams: Collection[str] = (),
    ) -> IssuedKey:
        """A new key; its value is in the result and nowhere else. ``team`` must be one of
        ``config_teams`` (the config's ``teams:``) or a team in the store."""
        check_name(name, "key")
        if team is not None:
            check_name(team, "team")
        compact = check_policy(policy, f"key {name!r}")
        secret = new_secret()
        key_id = "key_" + secrets.token_hex(8)

        def insert(execute: Execute, revision: int, now: float) -> KeyRecord:
            known = team is None or team in config_teams
            if not known and not execute("SELECT 1 FROM crossroads_teams WHERE name = ?", (team,)):
                raise InvalidRequestError(
                    f"unknown team {team!r}: create it with crossroads teams set, or "
                    "declare it under teams: in the config",
                    param="team",
                )
            if execute(
                "SELECT 1 FROM crossroads_keys WHERE name = ? AND revoked_at IS NULL", (name,)
            ):
                raise ConflictError(
                    f"an active key is already named {name!r}: rotate it, revoke it, or pick "
                    "another name",
                    param="name",
                )
            record = KeyRecord(
                key_id, name, team, compact, digest(secret), secret[-4:], now,
                expires_at=expires_at, revision=revision,
            )  # fmt: skip
            execute(
                f"INSERT INTO crossroads_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id, name, team, orjson.dumps(compact).decode(), record.digest,
                    record.last4, now, None, None, expires_at, revision,
                ),
            )  # fmt: skip
            return record

        return IssuedKey(self._change(insert), secret)

    def list_keys(self, include_revoked: bool = False) -> list[KeyRecord]:
        """Every key, oldest first (revoked ones only when asked)."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self._run() as execute:
            rows = execute(
                f"SELECT {KEY_COLUMNS} FROM crossroads_keys{where} ORDER BY created_at", ()
            )
        return [_key(row) for row in rows]

    def get_key(self, ref: str) -> KeyRecord:
        """The key with id ``ref``, else the active key named ``ref``."""
        with self._run() as execute:
            return self._find(execute, ref)

    def _find(self, execute: Execute, ref: str) -> KeyRecord:
        rows = execute(
            f"SELECT {KEY_COLUMNS} FROM crossroads_keys WHERE id = ? "
            "OR (name = ? AND revoked_at IS NULL) ORDER BY id = ? DESC",
            (ref, ref, ref),
        )
        if not rows:
            raise NotFoundError(
                f"no key with id or name {ref!r}: list them with crossroads keys list"
            )
        return _key(rows[0])

    def rotate_key(self, ref: str) -> IssuedKey:
        """A new value for key ``ref`` (same id, name, team and policy); the old value stops
        working at once."""
        secret = new_secret()

        def rotate(execute: Execute, revision: int, now: float) -> KeyRecord:
            key = self._find(execute, ref)
            if key.revoked_at is not None:
                raise ConflictError(f"key {key.id} is revoked: create a new one")
            execute(
                "UPDATE crossroads_keys SET digest = ?, last4 = ?, rotated_at = ?, revision = ? "
                "WHERE id = ?",
                (digest(secret), secret[-4:], now, revision, key.id),
            )
            return self._find(execute, key.id)

        return IssuedKey(self._change(rotate), secret)

    def revoke_key(self, ref: str) -> KeyRecord:
        """Revoke key ``ref``: it stops working at once (revoking twice is harmless)."""

        def revoke(execute: Execute, revision: int, now: float) -> KeyRecord:
            key = self._find(execute, ref)
            if key.revoked_at is None:
                execute(
                    "UPDATE crossroads_keys SET revoked_at = ?, revision = ? WHERE id = ?",
                    (now, revision, key.id),
                )
            return self._find(execute, key.id)

        record: KeyRecord = self._change(revoke)
        return record

    # ------------------------------------------------------------------ teams

    def put_team(self, name: str, policy: dict[str, Any] | None = None) -> TeamRecord:
        """Create team ``name`` or replace its policy."""
        check_name(name, "team")
        compact = orjson.dumps(check_policy(policy, f"team {name!r}")).decode()

        def upsert(execute: Execute, revision: int, now: float) -> TeamRecord:
            execute(
                "INSERT INTO crossroads_teams (name, policy, created_at, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET policy = excluded.policy, "
                "updated_at = excluded.updated_at",
                (name, compact, now, now),
            )
            return self._team(execute, name)

        team: TeamRecord = self._change(upsert)
        return team

    def list_teams(self) -> list[TeamRecord]:
        with self._run() as execute:
            rows = execute(
                "SELECT name, policy, created_at, updated_at FROM crossroads_teams ORDER BY name",
                (),
            )
        return [_team(row) for row in rows]

    def get_team(self, name: str) -> TeamRecord:
        with self._run() as execute:
            return self._team(execute, name)

    def _team(self, execute: Execute, name: str) -> TeamRecord:
        rows = execute(
            "SELECT name, policy, created_at, updated_at FROM crossroads_teams WHERE name = ?",
            (name,),
        )
        if not rows:
            raise NotFoundError(
                f"no team {name!r} in {self.where}: create it with crossroads teams set"
            )
        return _team(rows[0])

    def delete_team(self, name: str) -> None:
        """Delete team ``name``; refused while active keys belong to it."""

        def delete(execute: Execute, revision: int, now: float) -> None:
            self._team(execute, name)
            (n,) = execute(
                "SELECT COUNT(*) FROM crossroads_keys WHERE team = ? AND revoked_at IS NULL",
                (name,),
            )[0]
            if n:
                raise ConflictError(
                    f"team {name!r} still has {n} active keys: revoke them or move them first"
                )
            execute("DELETE FROM crossroads_teams WHERE name = ?", (name,))

        self._change(delete)

    # ------------------------------------------------------------------ what gateways read

    def changes(self, since: int) -> Changes:
        """The keys changed after revision ``since`` (all of them for ``-1``) and every team.
        The revision is read first: a change racing the read is read again next time."""
        with self._run() as execute:
            ((revision,),) = execute("SELECT revision FROM crossroads_key_state WHERE id = 1", ())
            keys = execute(
                f"SELECT {KEY_COLUMNS} FROM crossroads_keys WHERE revision > ?", (since,)
            )
            teams = execute("SELECT name, policy, created_at, updated_at FROM crossroads_teams", ())
        return Changes(int(revision), [_key(r) for r in keys], [_team(r) for r in teams])


def _key(row: Sequence[Any]) -> KeyRecord:
    return KeyRecord(
        row[0], row[1], row[2], orjson.loads(row[3]), bytes(row[4]), row[5], row[6], row[7],
        row[8], row[9], int(row[10]),
    )  # fmt: skip


def _team(row: Sequence[Any]) -> TeamRecord:
    return TeamRecord(row[0], orjson.loads(row[1]), row[2], row[3])
