"""The admin API (keys, teams, spend) and virtual keys at the gateway, in process, on SQLite
and PostgreSQL key stores: a key made through the API works at once, a rotated or revoked one
stops at once, and no key, prompt or secret reaches a trace or a log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from crossroads.gateway import create_app
from crossroads.gateway.app import Gateway
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream

ADMIN = "/v1/crossroads/admin"
ROOT = {"authorization": "Bearer root-secret-admin-key"}
PROMPT = "the quarterly figures for project zebra-umbrella"


class Gw:
    """A started gateway, its client, its trace store."""

    def __init__(self, app: Gateway, client: httpx.AsyncClient, store: MemoryTraceStore) -> None:
        self.app, self.client, self.store = app, client, store

    async def chat(self, key: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key is not None else {}
        body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}
        return await self.client.post("/v1/chat/completions", json=body, headers=headers)

    async def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(method, ADMIN + path, json=body, headers=ROOT)


@pytest.fixture
async def gw(
    fake_upstream: FakeUpstream, key_spec: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gw]:
    monkeypatch.setenv("ADMIN_KEY", ROOT["authorization"][7:])
    monkeypatch.setenv("CONFIG_KEY", "config-key-value-1234")
    cfg = routing_config(
        fake_upstream.base_url,
        server={
            "admin_key_env": "ADMIN_KEY",
            "api_keys": [{"name": "ops", "key_env": "CONFIG_KEY", "team": "platform"}],
        },
        store={"traces": "memory", "keys": key_spec},
        teams=[{"name": "platform", "policy": {"rpm": 10}}],
    )
    store = MemoryTraceStore()
    app = create_app(cfg, store=store)
    await app.startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=20) as client:
        yield Gw(app, client, store)
    await app.shutdown()


@pytest.fixture(params=["sqlite", "postgresql"])
def key_spec(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/keys.db"
    return str(request.getfixturevalue("postgres_url"))


async def test_keys_made_rotated_and_revoked_through_the_api_work_at_once(gw: Gw) -> None:
    team = await gw.admin("POST", "/teams", {"name": "search", "policy": {"tpm": 5000}})
    assert team.status_code == 200 and team.json()["policy"] == {"tpm": 5000}
    made = await gw.admin(
        "POST", "/keys", {"name": "ci", "team": "search", "policy": {"metadata": {"tier": "gold"}}}
    )
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["id"]
    assert key.startswith("cr-") and made.json()["display"] == f"cr-...{key[-4:]}"
    ok = await gw.chat(key)
    assert ok.status_code == 200, ok.text
    # the caller carries the key's and its team's policies, like a configured key
    caller = gw.app._caller({"headers": [(b"authorization", f"Bearer {key}".encode())]})
    assert (caller.key_name, caller.team) == ("ci", "search")
    assert caller.policy is not None and caller.policy.metadata == {"tier": "gold"}
    assert caller.team_policy is not None and caller.team_policy.tpm == 5000
    listed = (await gw.admin("GET", "/keys")).json()["data"]
    assert [k["name"] for k in listed] == ["ci"] and key not in str(listed)

    rotated = await gw.admin("POST", f"/keys/{key_id}/rotate")
    assert rotated.status_code == 200 and rotated.json()["id"] == key_id
    new = rotated.json()["key"]
    old_answer = await gw.chat(key)
    assert old_answer.status_code == 401
    assert old_answer.json()["error"]["code"] == "invalid_api_key"
    assert (await gw.chat(new)).status_code == 200

    revoked = await gw.admin("DELETE", "/keys/ci")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert (await gw.chat(new)).status_code == 401
    assert (await gw.admin("GET", "/keys")).json()["data"] == []
    assert len((await gw.admin("GET", "/keys?include_revoked=true")).json()["data"]) == 1


async def test_configured_keys_still_work_beside_virtual_keys(gw: Gw) -> None:
    assert (await gw.chat("config-key-value-1234")).status_code == 200
    assert (await gw.chat(None)).status_code == 401
    assert (await gw.chat("cr-" + "x" * 43)).status_code == 401
    # a virtual key of a config team gets the config's team policy
    key = (await gw.admin("POST", "/keys", {"name": "k", "team": "platform"})).json()["key"]
    await gw.app.key_ring.catch_up()  # type: ignore[union-attr]  (the next request would)
    caller = gw.app._caller({"headers": [(b"x-api-key", key.encode())]})
    assert caller.team_policy is not None and caller.team_policy.rpm == 10


async def test_an_expired_key_is_refused(gw: Gw) -> None:
    made = await gw.admin("POST", "/keys", {"name": "old", "expires_at": 1})
    assert made.status_code == 201 and made.json()["status"] == "expired"
    answer = await gw.chat(made.json()["key"])
    assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]
    fresh = await gw.admin("POST", "/keys", {"name": "new", "expires_in_days": 1})
    assert (await gw.chat(fresh.json()["key"])).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("POST", "/keys", {"nme": "x"}, 400, "nme"),
        ("POST", "/keys", {"name": 5}, 400, "name"),
        ("POST", "/keys", {"name": "x", "policy": {"rpm": -1}}, 400, "policy"),
        ("POST", "/keys", {"name": "x", "team": "ghosts"}, 400, "team"),
        ("POST", "/keys", {"name": "x", "expires_in_days": "soon"}, 400, "expires_in_days"),
        ("POST", "/keys", [1, 2], 400, None),
        ("GET", "/keys/key_missing", None, 404, None),
        ("POST", "/keys/key_missing/rotate", None, 404, None),
        ("PUT", "/keys", None, 405, None),
        ("GET", "/nothing", None, 404, None),
        ("DELETE", "/teams/ghosts", None, 404, None),
        ("GET", "/spend?by=user", None, 400, "by"),
        ("GET", "/spend?since=yesterday", None, 400, "since"),
    ],
)
async def test_bad_admin_calls_get_clear_openai_style_errors(
    gw: Gw, method: str, path: str, body: Any, status: int, param: str | None
) -> None:
    answer = await gw.admin(method, path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["message"] and error["type"] and error["param"] == param


async def test_a_duplicate_active_name_is_a_conflict(gw: Gw) -> None:
    assert (await gw.admin("POST", "/keys", {"name": "ci"})).status_code == 201
    again = await gw.admin("POST", "/keys", {"name": "ci"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


async def test_the_admin_key_guards_every_admin_route(gw: Gw) -> None:
    for headers in ({}, {"authorization": "Bearer config-key-value-1234"}):
        answer = await gw.client.get(ADMIN + "/keys", headers=headers)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"


async def test_without_a_key_store_the_admin_api_says_so(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_KEY", "root-secret-admin-key")
    cfg = routing_config(fake_upstream.base_url, server={"admin_key_env": "ADMIN_KEY"})
    app = create_app(cfg, store=MemoryTraceStore())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        answer = await client.get(ADMIN + "/keys", headers=ROOT)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "key_store_disabled"
        open_gateway = await client.get("/v1/models")
        assert open_gateway.status_code == 200  # no keys at all: the gateway stays open
    await app.shutdown()
    cfg = routing_config(fake_upstream.base_url)
    app = create_app(cfg, store=MemoryTraceStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        assert (await c.get(ADMIN + "/keys")).status_code == 403
    await app.shutdown()


async def test_spend_by_key_and_team_through_the_api(gw: Gw) -> None:
    key = (await gw.admin("POST", "/keys", {"name": "ci", "team": "platform"})).json()["key"]
    for _ in range(3):
        assert (await gw.chat(key)).status_code == 200
    assert (await gw.chat("config-key-value-1234")).status_code == 200
    rows = (await gw.admin("GET", "/spend?by=key,team")).json()["data"]
    assert [(r["key"], r["team"], r["requests"]) for r in rows] == [
        ("ci", "platform", 3),
        ("ops", "platform", 1),
    ]
    assert all(r["cost"] > 0 and r["prompt_tokens"] > 0 for r in rows)


async def test_an_unreadable_key_store_refuses_virtual_keys_only(
    gw: Gw, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossroads.exceptions import StoreError

    key = (await gw.admin("POST", "/keys", {"name": "ci"})).json()["key"]
    ring = gw.app.key_ring
    assert ring is not None
    real = ring.store.changes

    def broken(since: int) -> Any:
        raise StoreError("the database is gone")

    monkeypatch.setattr(ring.store, "changes", broken)
    await gw.admin("POST", "/teams", {"name": "moves-the-revision"})
    answer = await gw.chat(key)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "key_store_unavailable"
    assert (await gw.chat("config-key-value-1234")).status_code == 200
    monkeypatch.setattr(ring.store, "changes", real)
    assert (await gw.chat(key)).status_code == 200


async def test_the_openai_sdk_works_with_a_virtual_key(gw: Gw) -> None:
    key = (await gw.admin("POST", "/keys", {"name": "sdk"})).json()["key"]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw")
    client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key=key, http_client=http)
    answer = await client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": PROMPT}]
    )
    assert answer.choices[0].message.content
    bad = openai.AsyncOpenAI(base_url="http://gw/v1", api_key=key + "x", http_client=http)
    with pytest.raises(openai.AuthenticationError):
        await bad.models.list()
    await http.aclose()


async def test_no_key_prompt_or_secret_reaches_traces_or_logs(
    gw: Gw, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = (await gw.admin("POST", "/keys", {"name": "ci"})).json()
    rotated = (await gw.admin("POST", f"/keys/{made['id']}/rotate")).json()
    secrets = [made["key"], rotated["key"], "config-key-value-1234", ROOT["authorization"][7:]]
    for key in (*secrets, "not-a-key"):
        await gw.chat(key)
    await gw.admin("DELETE", f"/keys/{made['id']}")
    await gw.chat(rotated["key"])
    traces = orjson.dumps([gw.store.get(t["trace_id"]) for t in gw.store.recent(100)]).decode()
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    assert "ci" in logged and made["id"] in logged  # the admin actions are logged
    assert '"key_name":"ci"' in traces  # traces say which key, by name
    for text in (traces, logged):
        for secret in (*secrets, PROMPT):
            assert secret not in text


@pytest.mark.parametrize("key_spec", ["postgresql"], indirect=True)
async def test_a_gateway_cut_off_from_postgresql_refuses_virtual_keys(
    gw: Gw, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers stop waiting for a silent gateway, so a silent gateway stops trusting its copy."""
    import asyncio

    import psycopg

    from crossroads.exceptions import StoreError
    from crossroads.keys import postgres as keys_postgres

    key = (await gw.admin("POST", "/keys", {"name": "ci"})).json()["key"]
    assert (await gw.chat(key)).status_code == 200
    assert (await gw.client.get("/ready")).json()["keys"] == {
        "keys": 1,
        "revision": 1,
        "trusted": True,
    }
    real = keys_postgres.connect

    def unreachable(url: str, what: str) -> Any:
        raise StoreError("connection refused (a network partition)")

    monkeypatch.setattr(keys_postgres, "TRUST_S", 0.5)
    monkeypatch.setattr(keys_postgres, "connect", unreachable)
    url = gw.app.config.store.keys
    assert url is not None
    with psycopg.connect(url, autocommit=True) as conn:  # cut every connection of the gateway
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND application_name = current_setting('application_name')"
        )
    await asyncio.sleep(1.0)
    refused = await gw.chat(key)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "key_store_unavailable"
    assert (await gw.chat("config-key-value-1234")).status_code == 200
    ready = await gw.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["keys"]["trusted"] is False
    monkeypatch.setattr(keys_postgres, "connect", real)
    for _ in range(150):  # the listener reconnects (its backoff is at most 5 s)
        if (await gw.chat(key)).status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert (await gw.chat(key)).status_code == 200
