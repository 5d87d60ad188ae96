"""Two ``crossroads serve`` processes on one Redis: budgets, team budgets and rate limits hold
across both, a breaker opened on one is open on the other, and a Redis that dies mid-run
gets the declared failure policy (then state resumes when it is back).

Uses the machine's Redis on 6379 with a unique key prefix (deleted after), except the
kill test, which runs its own ``redis-server`` on a free port."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossroads.state import NANO
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess, free_port
from tests.support.redis import REDIS_URL, redis_or_skip, unique_prefix

PRICE = 100.0  # $/M tokens in and out: 1e-4 $ a token
MAX_TOKENS = 10
CHAT = {
    "model": "small",
    "max_tokens": MAX_TOKENS,
    "messages": [{"role": "user", "content": "hello there"}],
}


prefix = pytest.fixture(unique_prefix, name="prefix")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=["s"], chunks=2) as fake:
        yield fake


def config(
    upstream: str, state: dict[str, Any], keys: list[dict[str, Any]], **more: Any
) -> dict[str, Any]:
    return {
        "server": {"api_keys": keys},
        "store": {"traces": "memory"},
        # 200 requests at once on two shared cores stall the event loops: a generous timeout
        # keeps a slow answer from counting as a dead backend.
        "state": {"sync_interval_s": 0.2, "timeout_ms": 3000, **state},
        "upstreams": [{"name": "fake", "base_url": upstream, "timeouts": {"total": 10}}],
        "models": [
            {
                "name": "small",
                "upstream": "fake",
                "upstream_model": "s",
                "price": {"input": PRICE, "output": PRICE},
            }
        ],
        "default": {"models": ["small"]},
        **more,
    }


def replicas(cfg: dict[str, Any], tmp_path: Path) -> tuple[GatewayProcess, GatewayProcess]:
    one = GatewayProcess(cfg, tmp_path / "one").start()
    try:
        two = GatewayProcess(cfg, tmp_path / "two").start()
    except BaseException:
        one.stop()
        raise
    return one, two


async def burst(urls_and_tokens: list[tuple[str, str]], n: int) -> list[httpx.Response]:
    """``n`` concurrent chat requests, spread round-robin over (gateway, key) pairs."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    url + "/v1/chat/completions",
                    json=CHAT,
                    headers={"authorization": f"Bearer {token}"},
                )
                for url, token in (urls_and_tokens[i % len(urls_and_tokens)] for i in range(n))
            )
        )


def settled_spend(prefix: str, scope: str) -> tuple[float, int]:
    """(spent USD, USD still held) of the day budget of ``scope``, once nothing is held."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    tag = time.strftime("d%Y%m%d", time.gmtime())
    deadline = time.monotonic() + 20
    while True:
        values = client.hmget(f"{prefix}budget:{scope}:{tag}", "spent", "held")
        spent, held = (int(v or 0) for v in values)
        if held == 0 or time.monotonic() > deadline:
            client.close()
            return spent / NANO, held
        time.sleep(0.1)


def answer_cost(response: httpx.Response) -> float:
    usage = response.json()["usage"]
    return (usage["prompt_tokens"] + usage["completion_tokens"]) * PRICE / 1e6


def check_budget_run(responses: list[httpx.Response], spent: float, budget: float) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] >= 1 and statuses[429] >= 1, statuses
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "budget_exceeded", r.text
    # One request costs at most its prompt (as estimated, 6 tokens) plus max_tokens.
    max_cost = (6 + MAX_TOKENS) * PRICE / 1e6
    assert spent <= budget + max_cost
    # What the budget was charged is what the answers cost, to the nano-dollar.
    charged = sum(answer_cost(r) for r in responses if r.status_code == 200)
    assert spent == pytest.approx(charged, abs=1e-9 * len(responses))


async def test_a_key_budget_holds_across_two_replicas(
    prefix: str, upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICA_KEY", "secret-one")
    budget = 0.02
    keys = [
        {
            "name": "ci",
            "key_env": "REPLICA_KEY",
            "policy": {"budgets": [{"usd": budget, "period": "day"}]},
        }
    ]
    one, two = replicas(
        config(upstream.base_url, {"backend": REDIS_URL, "key_prefix": prefix}, keys), tmp_path
    )
    try:
        responses = await burst([(one.url, "secret-one"), (two.url, "secret-one")], 200)
    finally:
        one.stop()
        two.stop()
    spent, held = settled_spend(prefix, "key:ci")
    assert held == 0
    check_budget_run(responses, spent, budget)


async def test_a_team_budget_holds_over_two_keys_and_two_replicas(
    prefix: str, upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_A", "secret-a")
    monkeypatch.setenv("KEY_B", "secret-b")
    budget = 0.02
    keys = [
        {"name": "a", "key_env": "KEY_A", "team": "search"},
        {"name": "b", "key_env": "KEY_B", "team": "search"},
    ]
    cfg = config(
        upstream.base_url,
        {"backend": REDIS_URL, "key_prefix": prefix},
        keys,
        teams=[{"name": "search", "policy": {"budgets": [{"usd": budget, "period": "day"}]}}],
    )
    one, two = replicas(cfg, tmp_path)
    try:
        pairs = [
            (one.url, "secret-a"),
            (two.url, "secret-b"),
            (one.url, "secret-b"),
            (two.url, "secret-a"),
        ]
        responses = await burst(pairs, 200)
    finally:
        one.stop()
        two.stop()
    spent, held = settled_spend(prefix, "team:search")
    assert held == 0
    check_budget_run(responses, spent, budget)
    assert (
        "team 'search'"
        in next(r for r in responses if r.status_code == 429).json()["error"]["message"]
    )


async def test_a_requests_per_minute_limit_holds_across_two_replicas(
    prefix: str, upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICA_KEY", "secret-one")
    rpm = 40
    keys = [{"name": "ci", "key_env": "REPLICA_KEY", "policy": {"rpm": rpm}}]
    one, two = replicas(
        config(upstream.base_url, {"backend": REDIS_URL, "key_prefix": prefix}, keys), tmp_path
    )
    try:
        first = int(time.time() // 60)
        responses = await burst([(one.url, "secret-one"), (two.url, "secret-one")], 200)
        windows = int(time.time() // 60) - first + 1
    finally:
        one.stop()
        two.stop()
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in refused)
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in refused)
    if windows == 1:
        assert statuses[200] == rpm
    else:  # the run crossed a minute: each window allowed at most rpm
        assert rpm <= statuses[200] <= rpm * windows
    remaining = sorted(
        int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200
    )
    assert remaining[0] == 0 and len(set(remaining)) == len(remaining) or windows > 1


async def test_a_breaker_opened_on_one_replica_is_open_on_the_other(
    prefix: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    cfg = config(
        upstream.base_url,
        {"backend": REDIS_URL, "key_prefix": prefix},
        [],
        dispatch={
            "breaker": {"consecutive_failures": 3, "open_s": 30},
            "retries": {"max_attempts": 1},
        },
    )
    one, two = replicas(cfg, tmp_path)
    try:
        upstream.set_fault("503")
        async with httpx.AsyncClient(timeout=10) as client:

            async def state_on(gw: GatewayProcess) -> dict[str, Any]:
                r = await client.get(gw.url + "/v1/crossroads/endpoints")
                return r.json()["data"][0]  # type: ignore[no-any-return]

            for _ in range(3):
                r = await client.post(one.url + "/v1/chat/completions", json=CHAT)
                assert r.status_code in (502, 503), r.text
            assert (await state_on(one))["state"] == "open"
            deadline = time.monotonic() + 10
            while (seen := await state_on(two))["state"] != "open" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert seen["state"] == "open", seen
            assert seen["reason"] == "fleet: 3 consecutive failures: http_503"
            assert seen["served"] == 0 and seen["failed"] == 0  # replica two never called it
            down = await client.post(two.url + "/v1/chat/completions", json=CHAT)
            assert down.status_code == 503 and down.json()["error"]["code"] == "all_endpoints_down"
            assert int(down.headers["retry-after"]) >= 20
    finally:
        one.stop()
        two.stop()


class OwnRedis:
    """A ``redis-server`` of this test only, on a free port, nothing saved to disk."""

    def __init__(self, workdir: Path, *options: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.options = options  # more redis-server options (--requirepass ...)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("redis-server")
        assert exe is not None
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.2).ping()
                return
            except redis.AuthenticationError:
                return  # it answers: --requirepass
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


async def test_redis_dying_mid_run_gets_the_declared_policy_and_state_resumes(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_or_skip()
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    monkeypatch.setenv("BUDGET_KEY", "secret-budget")
    monkeypatch.setenv("RATE_KEY", "secret-rate")
    server = OwnRedis(tmp_path / "redis")
    server.start()
    keys = [
        {
            "name": "budgeted",
            "key_env": "BUDGET_KEY",
            "policy": {"budgets": [{"usd": 10, "period": "day"}]},
        },
        {"name": "rated", "key_env": "RATE_KEY", "policy": {"rpm": 1000}},
    ]
    state = {
        "backend": server.url,
        "timeout_ms": 200,
        "retry_after_s": 0.5,
    }  # budgets closed, rates open
    one, two = replicas(config(upstream.base_url, state, keys), tmp_path)
    try:
        async with httpx.AsyncClient(timeout=5) as client:

            async def ask(gw: GatewayProcess, token: str) -> httpx.Response:
                return await client.post(
                    gw.url + "/v1/chat/completions",
                    json=CHAT,
                    headers={"authorization": f"Bearer {token}"},
                )

            for gw in (one, two):
                assert (await ask(gw, "secret-budget")).status_code == 200
                assert "x-ratelimit-remaining-requests" in (await ask(gw, "secret-rate")).headers
            server.kill()
            started = time.monotonic()
            for _ in range(5):
                for gw in (one, two):
                    closed = await ask(gw, "secret-budget")
                    assert closed.status_code == 503, closed.text
                    assert closed.json()["error"]["code"] == "limits_unavailable"
                    opened = await ask(gw, "secret-rate")
                    assert opened.status_code == 200  # rate limits fail open
                    assert "x-ratelimit-remaining-requests" not in opened.headers
            assert time.monotonic() - started < 10  # 20 requests, none waited long
            ready = (await client.get(one.url + "/ready")).json()
            assert ready["state"]["available"] is False or ready["state"]["failures"] >= 1
            server.start()  # same port, empty
            deadline = time.monotonic() + 10
            while (
                r := await ask(two, "secret-budget")
            ).status_code != 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert r.status_code == 200
            assert (await ask(one, "secret-budget")).status_code in (200, 503)
            await asyncio.sleep(0.6)
            assert (await ask(one, "secret-budget")).status_code == 200
            resumed = await ask(one, "secret-rate")
            assert resumed.headers["x-ratelimit-remaining-requests"] == "999"  # counted afresh
    finally:
        one.stop()
        two.stop()
        server.kill()
