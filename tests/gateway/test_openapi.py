"""``GET /openapi.json``: the gateway's own OpenAPI 3.1 document."""

from __future__ import annotations

import httpx
import orjson
import pytest

from crossroads.formats.anthropic_messages import MessagesBody
from crossroads.formats.openai_chat import CHAT_BODY, ChatBody
from crossroads.gateway import create_app
from crossroads.gateway.app import FORMAT_ROUTES
from crossroads.gateway.openapi import build_document, openapi_json
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream


async def test_served_without_a_key_while_the_api_needs_one(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_KEY", "secret-t")
    cfg = routing_config(
        fake_upstream.base_url, server={"api_keys": [{"name": "team", "key_env": "TEAM_KEY"}]}
    )
    app = create_app(cfg)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        assert (await c.get("/v1/models")).status_code == 401
        answer = await c.get("/openapi.json")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == build_document()
        assert (await c.post("/openapi.json")).status_code == 404
    await app.shutdown()


def test_built_once() -> None:
    assert openapi_json() is openapi_json()


def test_every_model_call_is_documented_with_its_validation_schema() -> None:
    doc = build_document()
    assert doc["openapi"] == "3.1.0"
    assert set(FORMAT_ROUTES) <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    chat = schemas["ChatRequest"]
    assert chat["required"] == CHAT_BODY.json_schema()["required"]
    assert set(chat["properties"]) == ChatBody.__required_keys__ | ChatBody.__optional_keys__
    assert schemas["MessagesRequest"]["required"] == MessagesBody.model_json_schema()["required"]
    # Every reference resolves inside the document.
    text = orjson.dumps(doc).decode()
    for ref in {part.split('"')[0] for part in text.split('"$ref":"#/components/schemas/')[1:]}:
        assert ref in schemas, ref


def test_errors_are_documented_in_each_apis_shape() -> None:
    paths = build_document()["paths"]
    for path in FORMAT_ROUTES:
        shape = "AnthropicError" if path == "/v1/messages" else "OpenAIError"
        for status in ("400", "401", "404", "413", "502", "504"):
            response = paths[path]["post"]["responses"][status]
            assert response["content"]["application/json"]["schema"]["$ref"].endswith(shape)
    assert "200" in paths["/v1/models/{id}"]["get"]["responses"]
