"""The pipelined Redis client of the state backend, against the machine's Redis (and a
``redis-server`` of the test's own where the server is changed): replies reach their callers
whatever the concurrency, a caller that stops waiting shifts nobody's reply, a lost or stuck
connection is opened again, the URL's password and database are used, and settlements
survive Redis forgetting the scripts without being charged twice."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from crossroads.state import Budget, Settlement, open_state
from tests.support.redis import REDIS_URL, redis_or_skip

PREFIX = f"crossroads-resp-{os.getpid()}-{time.time_ns()}:"


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    redis_or_skip()
    from crossroads.state.resp import RespClient

    return RespClient(REDIS_URL, connect_timeout_s=2.0, stall_s=0.5)


async def test_concurrent_calls_share_one_connection_and_each_gets_its_reply(client) -> None:  # type: ignore[no-untyped-def]
    replies = await asyncio.gather(*(client.execute("ECHO", f"n{i}") for i in range(200)))
    assert replies == [f"n{i}".encode() for i in range(200)]
    ids = await asyncio.gather(*(client.execute("CLIENT", "ID") for _ in range(20)))
    assert len(set(ids)) == 1  # one connection
    piped = await client.pipeline([("ECHO", "a"), ("INCRBY", "not-a-key-" + PREFIX, "x")])
    assert piped[0] == b"a" and "not an integer" in str(piped[1])
    from crossroads.state.resp import ReplyError

    with pytest.raises(ReplyError, match="unknown command"):
        await client.execute("NO-SUCH-COMMAND")
    assert await client.execute("ECHO", "after") == b"after"
    await client.aclose()


async def test_a_caller_that_stops_waiting_shifts_no_reply_and_a_stuck_connection_reopens(
    client,  # type: ignore[no-untyped-def]
) -> None:
    first = await client.execute("CLIENT", "ID")
    # BLPOP on an empty list holds the connection for 0.3 s; its caller gives up first.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.execute("BLPOP", PREFIX + "empty", 0.3)
    assert await client.execute("ECHO", "next") == b"next"  # not BLPOP's nil
    assert await client.execute("CLIENT", "ID") == first
    # Now a reply that never comes in time: the next call after stall_s opens a new socket.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.execute("BLPOP", PREFIX + "empty", 3)
    await asyncio.sleep(0.6)
    started = time.monotonic()
    assert await client.execute("ECHO", "fresh") == b"fresh"
    assert time.monotonic() - started < 2.0  # did not wait behind the 3 s BLPOP
    assert await client.execute("CLIENT", "ID") != first
    await client.aclose()


async def test_a_killed_connection_fails_its_waiters_and_the_next_call_reconnects(
    client,  # type: ignore[no-untyped-def]
) -> None:
    import redis.asyncio as aioredis

    first = await client.execute("CLIENT", "ID")
    waiting = asyncio.ensure_future(client.execute("BLPOP", PREFIX + "empty", 5))
    await asyncio.sleep(0.1)
    other = aioredis.Redis.from_url(REDIS_URL)
    assert await other.client_kill_filter(_id=first) == 1
    await other.aclose()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 2)
    assert await client.execute("CLIENT", "ID") != first
    await client.aclose()


def own_redis(tmp_path: Path, *options: str):  # type: ignore[no-untyped-def]
    redis_or_skip()
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    from tests.state.test_replicas import OwnRedis

    server = OwnRedis(tmp_path / "redis", *options)
    server.start()
    return server


async def test_the_url_gives_the_password_and_the_database(tmp_path: Path) -> None:
    from crossroads.state.resp import ReplyError, RespClient

    server = own_redis(tmp_path, "--requirepass", "s3cr/t")
    try:
        good = RespClient(f"redis://:s3cr%2Ft@127.0.0.1:{server.port}/3")
        await good.execute("SET", "k", "v")
        info = (await good.execute("CLIENT", "INFO")).decode()
        assert " db=3 " in info
        await good.aclose()
        user = RespClient(f"redis://default:s3cr%2Ft@127.0.0.1:{server.port}/0")
        assert await user.execute("GET", "k") is None  # database 0
        await user.aclose()
        bad = RespClient(f"redis://:wrong@127.0.0.1:{server.port}/0")
        with pytest.raises(ReplyError, match="WRONGPASS|invalid password"):
            await bad.execute("PING")
        await bad.aclose()
    finally:
        server.kill()


async def test_settlements_after_redis_forgot_the_scripts_are_charged_once(
    tmp_path: Path,
) -> None:
    server = own_redis(tmp_path)
    state = open_state(server.url, timeout_s=2.0)
    try:
        budget = Budget("b:day", 10**12, None)
        now = time.time()
        admitted = await state.admit([], [budget], [500], "h1", now + 60, now)
        assert admitted.refused is None
        client = state._resp()  # type: ignore[attr-defined]
        # Redis forgets the scripts (as after a restart): the batch is sent again, once.
        await client.execute("SCRIPT", "FLUSH")
        await state.settle([Settlement([budget], "h1", 300), Settlement([budget], "h2", 40)], now)
        assert await state.budget_used([budget.key], now) == [340]
        assert await client.execute("HGET", budget.key, "held") == b"0"
    finally:
        await state.aclose()
        server.kill()
