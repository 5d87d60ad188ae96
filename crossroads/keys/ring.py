"""A gateway's copy of the key store in memory: the request path looks a key up by its digest
with no I/O, and refreshes the copy (in a worker thread) only when the store's revision moved.

A lookup is a dict lookup by SHA-256 digest. Its timing can at most tell how a guess's digest
relates to a stored digest, which says nothing about any key: SHA-256 cannot be inverted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from crossroads.config.tenants import PolicyConfig
from crossroads.keys.base import KeyStore

log = logging.getLogger("crossroads.keys")


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """What a request needs of a virtual key, its policy parsed once."""

    id: str
    name: str
    team: str | None
    policy: PolicyConfig
    expires_at: float | None


class KeyRing:
    """The live keys and teams of ``store``; ``config_teams`` are the config's ``teams:``,
    which win over a store team of the same name."""

    def __init__(self, store: KeyStore, config_teams: dict[str, PolicyConfig]) -> None:
        self.store = store
        self.config_teams = config_teams
        self.failed = False  # the last refresh failed: store keys cannot be trusted
        self._keys: dict[bytes, ActiveKey] = {}
        self._digests: dict[str, bytes] = {}  # key id -> its current digest
        self._teams: dict[str, PolicyConfig] = {}
        self._loaded = -1  # the store revision the copy holds
        self._current = -2  # the announced revision the copy answers for
        self._lock = threading.Lock()
        self._refreshing: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Open the store, watch it, load every key (at start-up, before any request)."""
        self.store.start(watch=True)
        self.refresh()

    def close(self) -> None:
        self.store.close()

    def stale(self) -> bool:
        """Whether the store changed since the copy was made: one memory read."""
        return self.store.revision() != self._current

    def find(self, key_digest: bytes) -> ActiveKey | None:
        return self._keys.get(key_digest)

    def trusted(self) -> bool:
        """Whether the copy is known to be current: the last refresh worked and the store is
        in contact (a PostgreSQL gateway cut off from the database stops trusting it)."""
        return not self.failed and self.store.trusted()

    def stats(self) -> dict[str, object]:
        """What ``GET /ready`` shows of the copy."""
        return {"keys": len(self._keys), "revision": self._loaded, "trusted": self.trusted()}

    def team_policy(self, team: str | None) -> PolicyConfig | None:
        if team is None:
            return None
        return self.config_teams.get(team) or self._teams.get(team)

    def refresh(self) -> None:
        """Apply the store's changes since the copy was made (blocking: call it in a thread)."""
        with self._lock:
            announced = self.store.revision()  # read first: a later change refreshes again
            changes = self.store.changes(self._loaded)
            keys, digests = dict(self._keys), dict(self._digests)
            for key in changes.keys:
                old = digests.pop(key.id, None)
                if old is not None:
                    keys.pop(old, None)
                if key.revoked_at is None:
                    policy = PolicyConfig.model_validate(key.policy)
                    keys[key.digest] = ActiveKey(key.id, key.name, key.team, policy, key.expires_at)
                    digests[key.id] = key.digest
            teams = {t.name: PolicyConfig.model_validate(t.policy) for t in changes.teams}
            self._keys, self._digests, self._teams = keys, digests, teams
            self._loaded, self._current = changes.revision, announced

    async def catch_up(self) -> None:
        """Refresh until the copy answers for the announced revision; concurrent requests
        share one refresh. A failure is logged and sets :attr:`failed`."""
        for _ in range(3):
            if not self.stale():
                return
            if self._refreshing is None:
                self._refreshing = asyncio.ensure_future(asyncio.to_thread(self.refresh))
                self._refreshing.add_done_callback(self._refreshed)
            try:
                await asyncio.shield(self._refreshing)
            except Exception as exc:
                if not self.failed:
                    log.error("cannot read the key store %s: %s", self.store.where, exc)
                self.failed = True
                return
            self.failed = False

    def _refreshed(self, future: asyncio.Future[None]) -> None:
        self._refreshing = None
        if not future.cancelled():
            future.exception()  # retrieved: the awaiting requests report it
