"""Policies enforced in the gateway (in process, a real fake upstream on loopback): allowed
models and operations, rate limits with their headers, budgets reserved before dispatch and
settled after (answers, streams, streams the client abandons), downgrades, the budget signal,
and what the state backend's failure policy does."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from crossroads.exceptions import ClientGoneError
from crossroads.gateway import create_app
from crossroads.state import NANO
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream

KEY = {"authorization": "Bearer secret-ci"}
CHAT = {"model": "auto", "max_tokens": 10, "messages": [{"role": "user", "content": "hello there"}]}


def limited(
    base_url: str, policy: dict[str, Any], team: dict[str, Any] | None = None, **more: Any
) -> Any:
    key: dict[str, Any] = {"name": "ci", "key_env": "CI_KEY", "policy": policy}
    if team is not None:
        key["team"] = "search"
    return routing_config(
        base_url,
        server={"api_keys": [key]},
        teams=[{"name": "search", "policy": team}] if team is not None else [],
        state=more.pop("state", {"backend": "memory"}),
        **more,
    )


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_KEY", "secret-ci")


async def serve(cfg: Any) -> tuple[Any, httpx.AsyncClient, MemoryTraceStore]:
    store = MemoryTraceStore()
    app = create_app(cfg, store=store)
    await app.startup()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return app, client, store


async def test_a_model_or_operation_the_policy_does_not_list_is_403_in_each_format(
    fake_upstream: FakeUpstream,
) -> None:
    cfg = limited(fake_upstream.base_url, {"models": ["small"], "operations": ["chat"]})
    app, client, _ = await serve(cfg)
    denied = await client.post("/v1/chat/completions", json=CHAT, headers=KEY)
    assert denied.status_code == 403
    error = denied.json()["error"]
    assert error["code"] == "model_not_allowed" and error["param"] == "model"
    assert "key 'ci' may not use model 'auto'; it may use: small" in error["message"]
    anthropic = await client.post(
        "/v1/messages",
        json={"model": "big", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        headers=KEY,
    )
    assert anthropic.status_code == 403
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "permission_error"
    allowed = await client.post(
        "/v1/chat/completions", json={**CHAT, "model": "small"}, headers=KEY
    )
    assert allowed.status_code == 200
    completions = await client.post(
        "/v1/completions", json={"model": "small", "prompt": "hi", "max_tokens": 3}, headers=KEY
    )
    assert completions.status_code == 403
    assert completions.json()["error"]["code"] == "operation_not_allowed"
    await client.aclose()
    await app.shutdown()


async def test_rpm_counts_requests_and_answers_with_ratelimit_headers(
    fake_upstream: FakeUpstream,
) -> None:
    app, client, store = await serve(limited(fake_upstream.base_url, {"rpm": 3}))
    seen = []
    for _ in range(3):
        r = await client.post("/v1/chat/completions", json=CHAT, headers=KEY)
        assert r.status_code == 200
        seen.append(int(r.headers["x-ratelimit-remaining-requests"]))
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    assert seen == [2, 1, 0]
    refused = await client.post("/v1/chat/completions", json=CHAT, headers=KEY)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "key 'ci' allows 3 requests per minute (policy.rpm)" in error["message"]
    # The refused request reached no upstream.
    assert fake_upstream.stats()["counts"]["POST /v1/chat/completions"] == 3
    await client.aclose()
    await app.shutdown()


async def test_tpm_holds_the_estimate_and_settles_the_actual_tokens(
    fake_upstream: FakeUpstream,
) -> None:
    app, client, store = await serve(limited(fake_upstream.base_url, {"tpm": 100}))
    r = await client.post("/v1/chat/completions", json=CHAT, headers=KEY)
    assert r.status_code == 200
    estimate = 100 - int(r.headers["x-ratelimit-remaining-tokens"])
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["reservation"]["tokens"] == estimate
    used = trace["usage"]["prompt_tokens"] + trace["usage"]["completion_tokens"]
    assert used < estimate  # max_tokens was not all used
    app.store.flush()
    await app.limits.settler.drain(5)
    again = await client.post("/v1/chat/completions", json=CHAT, headers=KEY)
    # The window now holds the first request's actual tokens plus the second's estimate.
    assert 100 - int(again.headers["x-ratelimit-remaining-tokens"]) == used + estimate
    big = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 500}, headers=KEY)
    assert big.status_code == 429
    assert "this request alone counts" in big.json()["error"]["message"]
    await client.aclose()
    await app.shutdown()


async def test_a_budget_holds_then_settles_and_refuses_what_would_overspend(
    fake_upstream: FakeUpstream,
) -> None:
    # small: 0.1 $/M in, 0.2 $/M out; each request holds about 13 * 0.1 + 10 * 0.2 = 3.3 µ$.
    cfg = limited(fake_upstream.base_url, {"budgets": [{"usd": 0.00001, "period": "day"}]})
    app, client, store = await serve(cfg)
    answered, refused = [], None
    for _ in range(40):
        r = await client.post("/v1/chat/completions", json=CHAT, headers=KEY)
        if r.status_code != 200:
            refused = r
            break
        answered.append(store.get(r.headers["x-crossroads-trace-id"]))
        await app.limits.settler.drain(5)
    assert refused is not None and refused.status_code == 429
    assert refused.headers["x-should-retry"] == "false"
    assert int(refused.headers["retry-after"]) <= 86400
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
    assert "the key 'ci' has $0.00000" in error["message"]
    assert "of its $0.00001 daily (UTC) budget spent or held" in error["message"]
    assert "on model 'small'" in error["message"]
    first = answered[0]["reservation"]
    assert first["budgets"] == ["key:ci/day"] and first["model"] == "small"
    assert first["settled_usd"] == pytest.approx(answered[0]["cost"])
    assert 0 < first["settled_usd"] <= first["reserved_usd"]
    used = await app.limits.state.backend.budget_used(first["keys"], __import__("time").time())
    spent = sum(t["cost"] for t in answered)
    assert used[0] == pytest.approx(spent * NANO, abs=len(answered))
    assert spent <= 0.00001
    await client.aclose()
    await app.shutdown()


async def test_a_team_budget_is_shared_and_downgrade_takes_a_cheaper_candidate(
    fake_upstream: FakeUpstream,
) -> None:
    # The default tries big first; big's estimate (~0.19 m$) does not fit the team's 0.1 m$.
    cfg = limited(
        fake_upstream.base_url,
        {},
        team={"budgets": [{"usd": 0.0001, "period": "month"}]},
        default={"models": ["big", "small"], "on_budget": "downgrade"},
    )
    app, client, store = await serve(cfg)
    r = await client.post("/v1/chat/completions", json=CHAT, headers=KEY)
    assert r.status_code == 200 and r.headers["x-crossroads-model"] == "small"
    trace = store.get(r.headers["x-crossroads-trace-id"])
    assert trace["reservation"]["downgraded_from"] == "big"
    assert trace["reservation"]["budgets"] == ["team:search/month"]
    assert trace["route"]["rule_path"][-1] == "on_budget: downgrade big -> small"
    big = next(c for c in trace["route"]["candidates"] if c["model"] == "big")
    assert big["eligible"] is False and big["reason"].startswith("over budget")
    # Asked for by name, big is refused: the client chose it, there is nothing to downgrade to.
    named = await client.post("/v1/chat/completions", json={**CHAT, "model": "big"}, headers=KEY)
    assert named.status_code == 429 and "team 'search'" in named.json()["error"]["message"]
    await client.aclose()
    await app.shutdown()


async def test_the_budget_signal_routes_cheaper_as_the_budget_runs_down(
    fake_upstream: FakeUpstream,
) -> None:
    cfg = limited(
        fake_upstream.base_url,
        {"budgets": [{"usd": 0.001, "period": "total"}]},
        signals=[{"kind": "budget", "name": "low", "below": 0.5}],
        decisions=[{"name": "thrifty", "when": "budget:low", "models": ["small"]}],
        default={"models": ["big"]},
    )
    app, client, store = await serve(cfg)
    models, values = [], []
    for _ in range(6):
        words = " ".join(["word"] * 20)  # echoed back: each answer costs about its hold
        body = {**CHAT, "max_tokens": 30, "messages": [{"role": "user", "content": words}]}
        r = await client.post("/v1/chat/completions", json=body, headers=KEY)
        assert r.status_code == 200
        models.append(r.headers["x-crossroads-model"])
        values.append(
            store.get(r.headers["x-crossroads-trace-id"])["route"]["signals"]["budget:low"]["value"]
        )
        await app.limits.settler.drain(5)
    assert models[0] == "big" and values[0] == 1.0
    assert "small" in models
    switch = models.index("small")
    assert values[switch] < 0.5 <= values[switch - 1]
    assert values == sorted(values, reverse=True)
    await client.aclose()
    await app.shutdown()


async def test_an_abandoned_stream_is_settled_with_what_was_streamed() -> None:
    with FakeUpstream(models=["s", "b"], chunks=6, chunk_delay=0.05) as slow:
        await _abandon_a_stream(slow)


async def _abandon_a_stream(upstream: FakeUpstream) -> None:
    cfg = limited(upstream.base_url, {"budgets": [{"usd": 1, "period": "day"}]})
    app, client, store = await serve(cfg)
    await client.aclose()
    body = __import__("orjson").dumps({**CHAT, "stream": True, "max_tokens": 50})
    sent: list[dict[str, Any]] = []

    bodies = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if bodies:
            return bodies.pop()
        await asyncio.sleep(3600)  # the disconnect watcher waits here
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and any(
            m["type"] == "http.response.body" for m in sent
        ):
            raise ClientGoneError("gone")  # the client reads the first chunk, then leaves
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"authorization", b"Bearer secret-ci"),
            (b"content-type", b"application/json"),
        ],
    }
    await app(scope, receive, send)
    (trace,) = store.recent(1)
    full = store.get(trace["trace_id"])
    assert full["status"] == 499
    reservation = full["reservation"]
    assert reservation["settled_usd"] is not None and reservation["settled_usd"] > 0
    assert full["usage"]["estimated"] is True
    await app.limits.settler.drain(5)
    used = await app.limits.state.backend.budget_used(
        reservation["keys"], __import__("time").time()
    )
    assert used == [round(reservation["settled_usd"] * NANO)]  # the hold is gone
    await app.shutdown()


@pytest.mark.parametrize("policy", ["closed", "open"])
async def test_a_dead_state_backend_gets_the_declared_policy(
    fake_upstream: FakeUpstream, policy: str
) -> None:
    state = {
        "backend": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "timeout_ms": 200,
        "retry_after_s": 60,
        "on_error": {"budgets": policy},
        "share_dispatch": False,
    }
    pytest.importorskip("redis")
    cfg = limited(fake_upstream.base_url, {"budgets": [{"usd": 1, "period": "day"}]}, state=state)
    app, client, store = await serve(cfg)
    r = await client.post("/v1/chat/completions", json=CHAT, headers=KEY)
    if policy == "closed":
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "limits_unavailable"
        assert "state.on_error.budgets is 'closed'" in r.json()["error"]["message"]
        assert int(r.headers["retry-after"]) >= 1
        assert "127.0.0.1:1" not in r.text  # the backend's address stays in the log
    else:
        assert r.status_code == 200
        trace = store.get(r.headers["x-crossroads-trace-id"])
        assert "served unchecked" in trace["reservation"]["error"]
        assert app.limits.settler.pending == 1  # its cost waits for the backend
    ready = (await client.get("/ready")).json()
    assert ready["state"]["available"] is False and ready["state"]["failures"] == 1
    await client.aclose()
    await app.shutdown()


async def test_a_caller_without_a_policy_never_touches_state(fake_upstream: FakeUpstream) -> None:
    app, client, _ = await serve(routing_config(fake_upstream.base_url))
    r = await client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert not any(h.startswith("x-ratelimit") for h in r.headers)
    assert "state" not in (await client.get("/ready")).json()
    assert app.limits.state.stats()["failures"] == 0 and not app.limits.used
    await client.aclose()
    await app.shutdown()


async def test_a_virtual_key_from_the_key_store_is_limited_like_a_configured_one(
    fake_upstream: FakeUpstream, tmp_path: Any
) -> None:
    from crossroads.keys import open_key_store

    spec = f"sqlite:///{tmp_path}/keys.db"
    store = open_key_store(spec)
    store.start()
    issued = store.create_key("virtual", policy={"rpm": 2, "models": ["auto"]})
    store.close()
    cfg = routing_config(
        fake_upstream.base_url,
        store={"traces": "memory", "keys": spec},
        state={"backend": "memory"},
    )
    app, client, _ = await serve(cfg)
    headers = {"authorization": f"Bearer {issued.secret}"}
    codes = [
        (await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    small = await client.post(
        "/v1/chat/completions", json={**CHAT, "model": "small"}, headers=headers
    )
    assert small.status_code == 403 and "key 'virtual'" in small.json()["error"]["message"]
    await client.aclose()
    await app.shutdown()


async def test_models_lists_only_what_the_key_and_its_team_may_use(
    fake_upstream: FakeUpstream, tmp_path: Any
) -> None:
    import openai

    from crossroads.keys import open_key_store

    spec = f"sqlite:///{tmp_path}/keys.db"
    keys = open_key_store(spec)
    keys.start()
    issued = keys.create_key("virtual", policy={"models": ["auto"]})
    keys.close()
    cfg = limited(
        fake_upstream.base_url,
        {"models": ["auto", "small"]},
        team={"models": ["small", "big"]},
        store={"traces": "memory", "keys": spec},
    )
    app, http, _ = await serve(cfg)

    def client(secret: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url="http://gw/v1", api_key=secret, http_client=http)

    configured = client("secret-ci")  # key allows auto and small, its team small and big
    assert [m.id async for m in configured.models.list()] == ["small"]
    assert (await configured.models.retrieve("small")).id == "small"
    for hidden in ("auto", "big", "nope"):
        with pytest.raises(openai.NotFoundError) as denied:
            await configured.models.retrieve(hidden)
        error = denied.value.body
        assert isinstance(error, dict) and error["code"] == "model_not_found"
        assert error["message"] == (
            f"The model {hidden!r} does not exist or you do not have access to it."
        )
    virtual = client(issued.secret)  # from the key store: auto only
    assert [m.id async for m in virtual.models.list()] == ["auto"]
    with pytest.raises(openai.NotFoundError):
        await virtual.models.retrieve("small")
    assert (await virtual.models.retrieve("auto")).id == "auto"
    await http.aclose()
    await app.shutdown()
