"""The semantic cache in Redis: what one worker stores another serves, scopes hold across
workers, entries expire and stay bounded everywhere, and a Redis that is down or silent is
a miss, never an error or a wait.

Uses the machine's Redis on 6379 under a unique key prefix (deleted after)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from crossroads.plans.cache_redis import RedisCacheStore
from crossroads.plans.cache_store import Entry, tenant_prefix
from crossroads.state import GuardedState, open_state
from tests.plans.conftest import PlanGateway, plan_config, script
from tests.support.redis import REDIS_URL, unique_prefix

prefix = pytest.fixture(unique_prefix, name="prefix")


def guarded(url: str = REDIS_URL, timeout_s: float = 2.0) -> GuardedState:
    return GuardedState(open_state(url, timeout_s=timeout_s), timeout_s, retry_after_s=30)


@pytest.fixture
async def stores(prefix: str) -> AsyncIterator[Any]:
    """``stores(n, ttl_s=, max_entries=)``: n stores on one namespace, as n workers hold."""
    opened: list[GuardedState] = []

    def make(n: int, ttl_s: float = 60, max_entries: int = 100) -> list[RedisCacheStore]:
        out = []
        for _ in range(n):
            state = guarded()
            opened.append(state)
            out.append(RedisCacheStore(state, prefix + "cache:d:", ttl_s, max_entries))
        return out

    yield make
    for state in opened:
        await state.backend.aclose()


def unit(i: int, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v


def entry(scope: str, text: str, vector: np.ndarray | None, answer: str = "A") -> Entry:
    return Entry(scope, text, "cheap", answer, "stop", time.time(), vector)


SCOPE_A = tenant_prefix("key:a") + "default\x00auto\x00shape"
SCOPE_B = tenant_prefix("key:b") + "default\x00auto\x00shape"


async def test_what_one_worker_stores_another_serves(stores) -> None:
    one, two = stores(2)
    assert await one.put(entry(SCOPE_A, "capital of France?", unit(0), "Paris."))
    found = await two.exact(SCOPE_A, "capital of France?")
    assert found is not None and found.answer == "Paris." and found.model == "cheap"
    # The second worker learnt the vector from the stream on that lookup.
    near = unit(0) * 0.99 + unit(1) * 0.141
    hit, score = await two.nearest(SCOPE_A, near, 0.95)
    assert hit is not None and hit.text == "capital of France?" and 0.95 <= score < 1
    miss, _ = await two.nearest(SCOPE_A, unit(2), 0.95)
    assert miss is None
    # A third worker started later catches up from the stream too.
    (three,) = stores(1)
    assert await three.exact(SCOPE_A, "something else") is None
    hit, _ = await three.nearest(SCOPE_A, near, 0.95)
    assert hit is not None and hit.answer == "Paris."


async def test_scopes_hold_across_workers(stores) -> None:
    one, two = stores(2)
    await one.put(entry(SCOPE_A, "secret plan?", unit(3), "tenant a's"))
    assert await two.exact(SCOPE_B, "secret plan?") is None
    hit, _ = await two.nearest(SCOPE_B, unit(3), 0.5)
    assert hit is None  # the same vector, another tenant
    found = await two.exact(SCOPE_A, "secret plan?")
    assert found is not None and found.answer == "tenant a's"
    # Invalidating tenant a on one worker is a miss on the other, exact and similar.
    await one.put(entry(SCOPE_B, "other", unit(4), "tenant b's"))
    assert await one.invalidate("key:a") == 1
    assert await two.exact(SCOPE_A, "secret plan?") is None
    hit, _ = await two.nearest(SCOPE_A, unit(3), 0.5)
    assert hit is None
    assert (await two.exact(SCOPE_B, "other")).answer == "tenant b's"


async def test_entries_expire_for_every_worker(stores) -> None:
    one, two = stores(2, ttl_s=0.3)
    await one.put(entry(SCOPE_A, "q", unit(0)))
    assert await two.exact(SCOPE_A, "q") is not None
    await asyncio.sleep(0.5)
    assert await two.exact(SCOPE_A, "q") is None
    hit, _ = await two.nearest(SCOPE_A, unit(0), 0.5)
    assert hit is None
    assert not two.index_  # forgotten locally once seen expired


async def test_the_size_bound_holds_across_workers(stores, prefix: str) -> None:
    import redis.asyncio as aioredis

    one, two = stores(2, max_entries=3)
    for i in range(5):
        await (one if i % 2 else two).put(entry(SCOPE_A, f"q{i}", unit(i)))
        await asyncio.sleep(0.002)  # distinct creation times: the oldest go first
    client = aioredis.Redis.from_url(REDIS_URL)
    live = [k async for k in client.scan_iter(f"{prefix}cache:d:e:*")]
    assert len(live) == 3 and await client.zcard(f"{prefix}cache:d:z") == 3
    await client.aclose()
    (three,) = stores(1, max_entries=3)
    assert await three.exact(SCOPE_A, "q0") is None and await three.exact(SCOPE_A, "q4")
    for i in range(2):  # evicted: a similar lookup anywhere misses
        hit, _ = await one.nearest(SCOPE_A, unit(i), 0.9)
        assert hit is None
    hit, _ = await three.nearest(SCOPE_A, unit(3), 0.9)
    assert hit is not None and hit.text == "q3"
    assert len(one.known_) <= 3 and len(three.known_) <= 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_down_is_a_miss() -> None:
    state = guarded(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    store = RedisCacheStore(state, "x:cache:d:", 60, 10)
    assert await store.exact(SCOPE_A, "q") is None
    assert await store.put(entry(SCOPE_A, "q", unit(0))) is False
    assert await store.invalidate() == 0
    assert not state.available  # backing off: the next calls do not even try
    assert await store.exact(SCOPE_A, "q") is None
    await state.backend.aclose()


class SilentServer:
    """A TCP server that accepts connections and never answers (a hung Redis)."""

    def __enter__(self) -> SilentServer:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


async def test_a_silent_redis_is_a_miss_within_the_timeout() -> None:
    with SilentServer() as silent:
        state = guarded(f"redis://127.0.0.1:{silent.port}/0", timeout_s=0.2)
        store = RedisCacheStore(state, "x:cache:d:", 60, 10)
        # Bounded by the state timeout; the guard here only keeps a hang from stalling CI.
        assert await asyncio.wait_for(store.exact(SCOPE_A, "q"), 10) is None
        assert await asyncio.wait_for(store.put(entry(SCOPE_A, "q", unit(0))), 10) is False
        await state.backend.aclose()


# ---------------------------------------------------------------- through two gateways


def redis_state(prefix: str, **more: Any) -> dict[str, Any]:
    return {"state": {"backend": REDIS_URL, "key_prefix": prefix, **more}}


def chat(client: openai.OpenAI, text: str, **body: Any) -> Any:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], **body
    )
    return raw, raw.parse()


def test_two_gateways_share_the_cache(upstream, prefix: str, monkeypatch) -> None:
    monkeypatch.setenv("KEY_A", "sk-a")
    monkeypatch.setenv("KEY_B", "sk-b")
    keys = [{"name": "a", "key_env": "KEY_A"}, {"name": "b", "key_env": "KEY_B"}]
    cfg = plan_config(
        upstream.base_url,
        {"kind": "cache", "exact_only": True},
        server={"api_keys": keys},
        **redis_state(prefix),
    )
    with PlanGateway(cfg) as one, PlanGateway(cfg) as two:

        def client(gw: PlanGateway, key: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=gw.server.url + "/v1", api_key=key, max_retries=0)

        raw, _ = chat(client(one, "sk-a"), "capital?", metadata=script(cheap={"reply": "Paris."}))
        assert one.trace(raw.headers["x-crossroads-trace-id"])["cache"] == "store"
        calls = upstream.app.stats["model cheap"]
        raw, answer = chat(client(two, "sk-a"), "capital?", metadata=script(cheap={"reply": "x"}))
        assert answer.choices[0].message.content == "Paris."
        assert upstream.app.stats["model cheap"] == calls
        assert two.trace(raw.headers["x-crossroads-trace-id"])["cache"] == "hit"
        # Another tenant on the second gateway does not get tenant a's answer.
        _, answer = chat(client(two, "sk-b"), "capital?", metadata=script(cheap={"reply": "b's"}))
        assert answer.choices[0].message.content == "b's"


def test_a_gateway_whose_redis_is_down_answers_from_upstream(upstream) -> None:
    cfg = plan_config(
        upstream.base_url,
        {"kind": "cache", "exact_only": True},
        state={"backend": f"redis://127.0.0.1:{free_port()}/0", "timeout_ms": 200},
    )
    with PlanGateway(cfg) as gw:
        for reply in ("one", "two"):
            raw, answer = chat(gw.client, "q", metadata=script(cheap={"reply": reply}))
            assert answer.choices[0].message.content == reply  # never stored, never an error
            assert gw.trace(raw.headers["x-crossroads-trace-id"])["cache"] == "miss"


def test_a_similar_prompt_hits_on_the_other_gateway(
    upstream, prefix: str, minilm_data_dir: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(minilm_data_dir))
    cfg = plan_config(
        upstream.base_url, {"kind": "cache", "similarity": 0.9}, **redis_state(prefix)
    )
    with PlanGateway(cfg) as one, PlanGateway(cfg) as two:
        chat(
            one.client, "What is the capital of France?", metadata=script(cheap={"reply": "Paris."})
        )
        raw, answer = chat(
            two.client, "what is the capital of france", metadata=script(cheap={"reply": "x"})
        )
        assert answer.choices[0].message.content == "Paris."
        trace = two.trace(raw.headers["x-crossroads-trace-id"])
        assert trace["cache"] == "hit" and 0.9 <= trace["stages"][0]["score"] < 1.0
        _, answer = chat(
            two.client, "How do I bake bread?", metadata=script(cheap={"reply": "Knead."})
        )
        assert answer.choices[0].message.content == "Knead."
