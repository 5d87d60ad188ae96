"""State in Redis, shared by every replica. What must be atomic (admission, settlement) is a
Lua script, so one round trip decides and nobody sees a half-applied change.

A budget is a hash (``spent``, ``held`` and one ``r:<hold>`` field per live hold) and a
sorted set of its holds by expiry (``<key>:holds``); a rate window is a counter with a TTL.
Amounts are integer nano-USD. With Redis Cluster, give ``state.key_prefix`` a hash tag
(``{crossroads}:``) so that every key a script touches is in one slot.

Talks to Redis through :mod:`crossroads.state.resp` (one pipelined connection per worker);
needs ``hiredis`` (and ``redis`` for the semantic cache plan): ``pip install
"crossroads[redis]"``, imported on first use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crossroads.state.base import SETTLED_TTL_S, Admission, Budget, Settlement, StateBackend, Window

if TYPE_CHECKING:
    from crossroads.state.resp import RespClient

# Releases holds that expired (at most 100 a call) on budget j: KEYS[h], KEYS[z].
_PURGE = """
local function purge(h, z, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do
    local amount = redis.call('HGET', h, 'r:' .. id)
    if amount then
      redis.call('HINCRBY', h, 'held', '-' .. amount)
      redis.call('HDEL', h, 'r:' .. id)
    end
    redis.call('ZREM', z, id)
  end
  local v = redis.call('HMGET', h, 'spent', 'held')
  return tonumber(v[1] or '0') + tonumber(v[2] or '0')
end
"""

# KEYS: windows..., then (hash, holds) per budget.
# ARGV[1], comma-separated (one argument costs the client far less than twenty):
# nw, nb, nc, now, hold, hold_until, (cost, limit, ttl) per window,
#       (limit, ttl) per budget, the candidate costs.
ADMIT = (
    _PURGE
    + """
local A = {}
for v in string.gmatch(ARGV[1], '[^,]+') do
  A[#A + 1] = v
end
local nw, nb, nc = tonumber(A[1]), tonumber(A[2]), tonumber(A[3])
local now, hold, hold_until = tonumber(A[4]), A[5], A[6]
local used = {}
for i = 1, nw do
  local a = 4 + 3 * i
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  used[i] = count
  if count + tonumber(A[a]) > tonumber(A[a + 1]) then
    return {0, i - 1, used, {}}
  end
end
local b0 = 7 + 3 * nw
local c0 = b0 + 2 * nb
local spent = {}
for j = 1, nb do
  spent[j] = purge(KEYS[nw + 2 * j - 1], KEYS[nw + 2 * j], now)
end
local choice = 0
if nb > 0 then
  choice = -1
  for c = 1, nc do
    local cost = tonumber(A[c0 + c - 1])
    local fits = true
    for j = 1, nb do
      if spent[j] + cost > tonumber(A[b0 + 2 * (j - 1)]) then
        fits = false
        break
      end
    end
    if fits then
      choice = c - 1
      break
    end
  end
  if choice < 0 then
    return {-1, -1, used, spent}
  end
end
for i = 1, nw do
  local a = 4 + 3 * i
  redis.call('SET', KEYS[i], 0, 'EX', A[a + 2], 'NX')
  used[i] = redis.call('INCRBY', KEYS[i], A[a])
end
if nb > 0 then
  local cost = A[c0 + choice]
  for j = 1, nb do
    local h, z = KEYS[nw + 2 * j - 1], KEYS[nw + 2 * j]
    redis.call('HINCRBY', h, 'held', cost)
    redis.call('HSET', h, 'r:' .. hold, cost)
    redis.call('ZADD', z, hold_until, hold)
    local ttl = tonumber(A[b0 + 2 * (j - 1) + 1])
    if ttl > 0 then
      redis.call('EXPIRE', h, ttl)
      redis.call('EXPIRE', z, ttl)
    end
  end
end
return {1, choice, used, spent}
"""
)

# KEYS: (hash, holds) per budget, then windows, then the marker if any. ARGV[1],
# comma-separated: nb, nw, hold, amount, ttl per budget, delta per window, now, the marker's
# ttl (0: no marker). A marker set and not expired at ``now``: applied already, nothing done.
SETTLE = """
local A = {}
for v in string.gmatch(ARGV[1], '[^,]+') do
  A[#A + 1] = v
end
local nb, nw = tonumber(A[1]), tonumber(A[2])
local hold, amount = A[3], A[4]
local now, mttl = tonumber(A[5 + nb + nw]), tonumber(A[6 + nb + nw])
if mttl > 0 then
  local m = KEYS[2 * nb + nw + 1]
  local seen = redis.call('GET', m)
  if seen and tonumber(seen) > now then
    return 0
  end
  redis.call('SET', m, tostring(now + mttl), 'EX', math.ceil(mttl))
end
for j = 1, nb do
  local h, z = KEYS[2 * j - 1], KEYS[2 * j]
  local held = redis.call('HGET', h, 'r:' .. hold)
  if held then
    redis.call('HINCRBY', h, 'held', '-' .. held)
    redis.call('HDEL', h, 'r:' .. hold)
  end
  redis.call('ZREM', z, hold)
  redis.call('HINCRBY', h, 'spent', amount)
  local ttl = tonumber(A[4 + j])
  if ttl > 0 then
    redis.call('EXPIRE', h, ttl)
    redis.call('EXPIRE', z, ttl)
  end
end
for i = 1, nw do
  local k = KEYS[2 * nb + i]
  if redis.call('EXISTS', k) == 1 then
    redis.call('INCRBY', k, A[4 + nb + i])
  end
end
return 1
"""

# KEYS: (hash, holds) per budget. ARGV: now.
USED = (
    _PURGE
    + """
local out = {}
for j = 1, #KEYS / 2 do
  out[j] = purge(KEYS[2 * j - 1], KEYS[2 * j], tonumber(ARGV[1]))
end
return out
"""
)


class RedisState(StateBackend):
    """Over one lazily opened, pipelined connection per worker
    (:class:`~crossroads.state.resp.RespClient`); the scripts are called by their SHA and
    loaded when Redis does not know them (first use, a restart)."""

    name = "redis"

    def __init__(self, url: str, timeout_s: float = 0.1) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client: RespClient | None = None
        self._pool_client: Any = None

    def _resp(self) -> RespClient:
        if self._client is None:
            from crossroads.state.resp import RespClient

            try:
                import hiredis  # noqa: F401
            except ImportError as exc:
                from crossroads.exceptions import StateUnavailableError

                raise StateUnavailableError(
                    'the redis state backend needs the hiredis package: pip install "crossroads[redis]"'
                ) from exc
            # No timer per read: GuardedState bounds every call. A reply this late means
            # the connection is stuck, and it is opened again.
            self._client = RespClient(
                self.url, self.timeout_s, stall_s=max(1.0, 4 * self.timeout_s)
            )
        return self._client

    def _redis(self) -> Any:
        """A redis-py client on the same server, for what needs more commands than the
        state protocol (the semantic cache plan); built only when asked for."""
        if self._pool_client is None:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=64,
                timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
            self._pool_client = aioredis.Redis(connection_pool=pool)
        return self._pool_client

    async def _load(self) -> None:
        _raise_errors(await self._resp().pipeline([("SCRIPT", "LOAD", s) for s in _SHAS]))

    async def _eval(self, script: str, keys: list[str], arg: Any) -> Any:
        """``EVALSHA`` of ``script``; the scripts are loaded when Redis answers NOSCRIPT."""
        from crossroads.state.resp import ReplyError

        command = ("EVALSHA", _SHAS[script], len(keys), *keys, arg)
        try:
            return await self._resp().execute(*command)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self._load()
        return await self._resp().execute(*command)

    async def admit(
        self,
        windows: Sequence[Window],
        budgets: Sequence[Budget],
        costs: Sequence[int],
        hold: str,
        hold_until: float,
        now: float,
    ) -> Admission:
        keys = [w.key for w in windows]
        args: list[Any] = [len(windows), len(budgets), len(costs), now, hold, hold_until]
        for w in windows:
            args += (w.cost, w.limit, w.ttl_s)
        for b in budgets:
            keys += (b.key, b.key + ":holds")
            args += (b.limit, b.ttl_s or 0)
        args += costs
        status, index, used, spent = await self._eval(ADMIT, keys, _pack(args))
        used = [int(u) for u in used]
        spent = [int(s) for s in spent]
        if status == 1:
            return Admission(None, choice=int(index), window_used=used, budget_used=spent)
        if status == 0:
            return Admission("window", window=int(index), window_used=used)
        return Admission("budget", window_used=used, budget_used=spent)

    async def settle(self, settlements: Sequence[Settlement], now: float) -> None:
        from crossroads.state.resp import ReplyError

        sha = _SHAS[SETTLE]
        commands = []
        for s in settlements:
            keys = [k for b in s.budgets for k in (b.key, b.key + ":holds")]
            keys += [key for key, _ in s.windows]
            args: list[Any] = [len(s.budgets), len(s.windows), s.hold, s.amount]
            args += [b.ttl_s or 0 for b in s.budgets]
            args += [delta for _, delta in s.windows]
            args += [now, SETTLED_TTL_S if s.marker else 0]
            if s.marker:
                keys.append(s.marker)
            commands.append(("EVALSHA", sha, len(keys), *keys, _pack(args)))
        replies = await self._resp().pipeline(commands)
        # Only the settlements Redis did not run are sent again: the others are applied.
        again = [c for c, r in zip(commands, replies, strict=True) if isinstance(r, ReplyError)]
        if not again:
            return
        if not all(str(r).startswith("NOSCRIPT") for r in replies if isinstance(r, ReplyError)):
            raise next(r for r in replies if isinstance(r, ReplyError))
        await self._load()
        for reply in await self._resp().pipeline(again):
            if isinstance(reply, ReplyError):
                raise reply

    async def budget_used(self, keys: Sequence[str], now: float) -> list[int]:
        pairs = [k for key in keys for k in (key, key + ":holds")]
        return [int(v) for v in await self._eval(USED, pairs, now)]

    async def put_record(self, key: str, value: str, ttl_s: float) -> None:
        await self._resp().execute("SET", key, value, "PX", max(1, int(ttl_s * 1000)))

    async def get_records(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        values = await self._resp().execute("MGET", *keys)
        return [None if v is None else v.decode() for v in values]

    async def add_counters(self, updates: dict[str, dict[str, int]], ttl_s: float) -> None:
        if not updates:
            return
        commands: list[tuple[Any, ...]] = [("MULTI",)]
        for key, deltas in updates.items():
            commands += [("HINCRBY", key, name, delta) for name, delta in deltas.items()]
            commands.append(("PEXPIRE", key, max(1, int(ttl_s * 1000))))
        commands.append(("EXEC",))
        replies = await self._resp().pipeline(commands)
        _raise_errors(replies)

    async def read_counters(self, keys: Sequence[str]) -> list[dict[str, int]]:
        if not keys:
            return []
        rows = await self._resp().pipeline([("HGETALL", key) for key in keys])
        _raise_errors(rows)
        return [{row[i].decode(): int(row[i + 1]) for i in range(0, len(row), 2)} for row in rows]

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
        if self._pool_client is not None:
            pooled, self._pool_client = self._pool_client, None
            await pooled.aclose()
            await pooled.connection_pool.disconnect()


_SHAS = {script: hashlib.sha1(script.encode()).hexdigest() for script in (ADMIT, SETTLE, USED)}


def _raise_errors(replies: list[Any]) -> None:
    from crossroads.state.resp import ReplyError

    for reply in replies:
        if isinstance(reply, ReplyError):
            raise reply


def _pack(args: list[Any]) -> str:
    return ",".join(map(str, args))


def open_redis(spec: str, **settings: Any) -> RedisState:
    """``state.backend: redis://host:6379/0`` (also ``rediss://`` and ``unix://``)."""
    return RedisState(spec, **settings)
