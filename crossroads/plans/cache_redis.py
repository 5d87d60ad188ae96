"""The semantic cache in Redis, shared by every worker and replica.

Plain Redis 7 has no vector search (that needs the search module), so the entries live in
Redis and each worker keeps its own similarity index of them (:class:`VectorIndex`),
learning of new entries from a stream:

- ``<ns>e:<tenant hash>:<entry hash>``: the entry (JSON), expiring ``ttl_s`` after it was
  stored. An exact lookup is one ``GET`` of the hash of (scope, text); a similarity match
  found in the local index is confirmed by the same ``GET``, so an entry that expired, was
  evicted or invalidated anywhere is a miss everywhere;
- ``<ns>z``: the live entries by creation time; storing one drops the expired and, past
  ``max_entries``, the oldest (one Lua script, so the bound holds across workers);
- ``<ns>log``: a stream of (entry key, scope, vector) capped near ``max_entries``; every
  lookup reads what is new since the last (``XREAD`` in the same round trip as the exact
  ``GET``, at most ``SYNC_BATCH`` records), so a worker sees another's entries at its next
  lookup and a new worker fills its index over its first lookups.

``<ns>`` is ``state.key_prefix`` + ``cache:<decision>:``. Scope (tenant, decision, model,
request shape) is inside the hashed key and is checked again on read. Every Redis call is
bounded by ``state.timeout_ms`` and backs off after failures (:class:`GuardedState`); a
failed call is a miss (or an unstored answer), never an error, so a dead Redis costs the
cache its hits and nothing else. With Redis Cluster, give the prefix a hash tag.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import orjson

from crossroads.exceptions import StateUnavailableError
from crossroads.plans.cache_store import Entry, VectorIndex

if TYPE_CHECKING:
    import numpy as np

    from crossroads.state import GuardedState

SYNC_BATCH = 500  # stream records read per lookup at most

# KEYS: entry, zset, stream. ARGV: value, created (ms), ttl (ms), max entries, scope,
# vector ('' for none), stream cap. Returns how many entries it evicted.
STORE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  for _, k in ipairs(old) do
    redis.call('DEL', k)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'k', KEYS[1], 's', ARGV[5],
    'c', ARGV[2], 'v', ARGV[6])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return math.max(excess, 0)
"""


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


class RedisCacheStore:
    """A cache store in Redis (see the module docstring). ``state``: a guarded Redis state
    backend, whose connection pool it shares; ``namespace``: the key prefix of this cache."""

    def __init__(
        self,
        state: GuardedState,
        namespace: str,
        ttl_s: float,
        max_entries: int,
        similarity_index: bool = True,
    ) -> None:
        self.state = state
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.similarity_index = similarity_index
        self.index_: dict[str, VectorIndex] = {}
        self.known_: dict[str, tuple[str, float]] = {}  # entry key -> (scope, created)
        self.last_id_ = "0-0"
        self._sha: str | None = None

    def key(self, scope: str, text: str) -> str:
        """The Redis key of ``text`` in ``scope``."""
        tenant = scope.partition("\x00")[0]
        return f"{self.namespace}e:{_digest(tenant, 16)}:{_digest(scope + chr(0) + text, 32)}"

    def _client(self) -> Any:
        # The state backend's lazily built, bounded pool (same URL, timeouts and limits).
        return self.state.backend._redis()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ lookups

    async def exact(self, scope: str, text: str) -> Entry | None:
        """The entry of ``text`` in ``scope``; reads new stream records in the same trip."""
        key = self.key(scope, text)

        async def lookup() -> list[Any]:
            async with self._client().pipeline(transaction=False) as pipe:
                pipe.get(key)
                if self.similarity_index:
                    pipe.xread({self.namespace + "log": self.last_id_}, count=SYNC_BATCH)
                return list(await pipe.execute())

        try:
            found = await self.state.call(lookup)
        except StateUnavailableError:
            return None
        if self.similarity_index:
            self._learn(found[1])
        return _entry(found[0], scope, text)

    async def nearest(
        self, scope: str, vector: np.ndarray, similarity: float
    ) -> tuple[Entry | None, float]:
        """The most similar entry of ``scope`` in the local index, confirmed in Redis."""
        index = self.index_.get(scope)
        if index is None:
            return None, 0.0
        key, score = index.search(vector)
        if key is None or score < similarity:
            return None, score
        if time.time() - self.known_[key][1] > self.ttl_s:
            self._forget(key)
            return None, score
        try:
            raw = await self.state.call(lambda: self._client().get(key))
        except StateUnavailableError:
            return None, score
        entry = _entry(raw, scope, None)
        if entry is None:  # expired, evicted or invalidated by any worker
            self._forget(key)
        return entry, score

    # ------------------------------------------------------------------ writes

    async def put(self, entry: Entry) -> bool:
        """Store ``entry`` for every worker; ``False`` when Redis is unavailable."""
        key = self.key(entry.scope, entry.text)
        value = orjson.dumps(
            {
                "s": entry.scope,
                "t": entry.text,
                "m": entry.model,
                "a": entry.answer,
                "f": entry.finish_reason,
                "c": entry.created,
            }
        )
        vector = b""
        if self.similarity_index and entry.vector is not None:
            import numpy as np

            vector = np.asarray(entry.vector, dtype=np.float32).tobytes()
        args = [
            value,
            int(entry.created * 1000),
            max(1, int(self.ttl_s * 1000)),
            self.max_entries,
            entry.scope,
            vector,
            self.max_entries,
        ]
        keys = [key, self.namespace + "z", self.namespace + "log"]
        try:
            await self.state.call(lambda: self._eval(keys, args))
        except StateUnavailableError:
            return False
        if vector:
            self._add(key, entry.scope, entry.created, entry.vector)
        return True

    async def _eval(self, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        client = self._client()
        if self._sha is None:
            sha = await client.script_load(STORE)
            self._sha = sha.decode() if isinstance(sha, bytes) else sha
        try:
            return await client.evalsha(self._sha, len(keys), *keys, *args)
        except NoScriptError:  # the server restarted
            self._sha = None
            return await self._eval(keys, args)

    async def invalidate(self, tenant: str | None = None) -> int:
        """Delete every entry (of one tenant, when given) for every worker; how many."""
        pattern = self.namespace + (f"e:{_digest(tenant, 16)}:*" if tenant is not None else "e:*")

        async def drop() -> int:
            client = self._client()
            keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
            if keys:
                await client.delete(*keys)
                await client.zrem(self.namespace + "z", *keys)
            return len(keys)

        try:
            return int(await self.state.call(drop))
        except StateUnavailableError:
            return 0

    # ------------------------------------------------------------------ the local index

    def _learn(self, records: Any) -> None:
        """Add the stream records read since the last lookup to the local index."""
        import numpy as np

        if not records:
            return
        now = time.time()
        for _stream, items in records:
            for record_id, fields in items:
                self.last_id_ = record_id.decode() if isinstance(record_id, bytes) else record_id
                created = int(fields[b"c"]) / 1000
                if now - created > self.ttl_s:
                    continue
                vector = np.frombuffer(fields[b"v"], dtype=np.float32)
                self._add(fields[b"k"].decode(), fields[b"s"].decode(), created, vector)

    def _add(self, key: str, scope: str, created: float, vector: Any) -> None:
        self.known_[key] = (scope, created)
        self.index_.setdefault(scope, VectorIndex()).add(key, vector)
        while len(self.known_) > self.max_entries:
            self._forget(next(iter(self.known_)))  # the oldest learnt

    def _forget(self, key: str) -> None:
        found = self.known_.pop(key, None)
        if found is None:
            return
        index = self.index_.get(found[0])
        if index is not None:
            index.remove(key)
            if not index:
                del self.index_[found[0]]


def _entry(raw: bytes | None, scope: str, text: str | None) -> Entry | None:
    """The stored entry, if it belongs to ``scope`` (and is ``text``, when given)."""
    if raw is None:
        return None
    data = orjson.loads(raw)
    if data["s"] != scope or (text is not None and data["t"] != text):
        return None  # a hash collision: never serve another request's answer
    return Entry(data["s"], data["t"], data["m"], data["a"], data["f"], data["c"])
