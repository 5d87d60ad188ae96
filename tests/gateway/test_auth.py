"""Every route that reveals or uses the gateway's configuration checks the API key."""

from __future__ import annotations

import httpx
import pytest

from crossroads.gateway import create_app
from crossroads.gateway.app import _key_name
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
    keys = {"alpha-key": "a", "beta-key": "b"}
    assert _key_name(keys, "beta-key") == "b"
    assert _key_name(keys, "beta-kez") is None
    assert _key_name(keys, "") is None
