"""Every route that reveals or uses the gateway's configuration checks the API key."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from crossroads.config import ApiKey
from crossroads.exceptions import ConfigError
from crossroads.gateway import create_app
from crossroads.gateway.app import _find_key
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream


async def test_model_card_needs_the_key(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_KEY", "secret-t")
    cfg = routing_config(
        fake_upstream.base_url, server={"api_keys": [{"name": "team", "key_env": "TEAM_KEY"}]}
    )
    app = create_app(cfg)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        assert (await c.get("/v1/models/small")).status_code == 401
        ok = await c.get("/v1/models/small", headers={"authorization": "Bearer secret-t"})
        assert ok.status_code == 200 and ok.json()["id"] == "small"
        for path in ("/v1/messages", "/v1/responses", "/v1/embeddings"):
            assert (await c.post(path, json={})).status_code == 401
    await app.shutdown()


def test_key_lookup_compares_every_key() -> None:
    a, b = ApiKey(name="a", key_env="A"), ApiKey(name="b", key_env="B")
    keys = {hashlib.sha256(k.encode()).digest(): v for k, v in (("alpha-key", a), ("beta-key", b))}
    assert _find_key(keys, hashlib.sha256(b"beta-key").digest()) is b
    assert _find_key(keys, hashlib.sha256(b"beta-kez").digest()) is None
    assert _find_key(keys, hashlib.sha256(b"").digest()) is None


async def test_a_key_brings_its_policy_and_its_teams(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_KEY", "secret-t")
    cfg = routing_config(
        fake_upstream.base_url,
        server={
            "api_keys": [
                {
                    "name": "ci",
                    "key_env": "TEAM_KEY",
                    "team": "search",
                    "policy": {"rpm": 60, "metadata": {"tier": "gold"}},
                }
            ]
        },
        teams=[{"name": "search", "policy": {"budgets": [{"usd": 5, "period": "day"}]}}],
    )
    app = create_app(cfg)
    await app.startup()
    scope = {"headers": [(b"authorization", b"Bearer secret-t")]}
    caller = app._caller(scope)
    assert (caller.key_name, caller.team) == ("ci", "search")
    assert caller.policy is not None and caller.policy.rpm == 60
    assert caller.policy.metadata == {"tier": "gold"}
    assert caller.team_policy is not None and caller.team_policy.budgets[0].usd == 5
    await app.shutdown()


def test_a_key_naming_an_unknown_team_is_a_config_error(fake_upstream: FakeUpstream) -> None:
    with pytest.raises(ConfigError, match=r"server\.api_keys\[0\]\.team"):
        routing_config(
            fake_upstream.base_url,
            server={"api_keys": [{"name": "ci", "key_env": "K", "team": "nope"}]},
        )


async def test_the_admin_key_guards_admin_calls(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossroads.gateway.app import AdminDisabled, Unauthorized

    app = create_app(routing_config(fake_upstream.base_url))
    await app.startup()
    with pytest.raises(AdminDisabled):
        app._admin({"headers": [(b"authorization", b"Bearer anything")]})
    await app.shutdown()
    monkeypatch.setenv("ADMIN_KEY", "root-secret")
    app = create_app(routing_config(fake_upstream.base_url, server={"admin_key_env": "ADMIN_KEY"}))
    await app.startup()
    app._admin({"headers": [(b"authorization", b"Bearer root-secret")]})
    app._admin({"headers": [(b"x-api-key", b"root-secret")]})
    for headers in ([], [(b"authorization", b"Bearer root-secreT")]):
        with pytest.raises(Unauthorized):
            app._admin({"headers": headers})
    await app.shutdown()
