"""``POST /v1/crossroads/feedback`` and feedback inline in request metadata: stored with the
trace, idempotent per (trace, source), owned by the trace's key, observed by the selector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from crossroads.gateway import create_app
from crossroads.gateway.app import Gateway
from crossroads.store.memory import MemoryTraceStore
from crossroads.store.sqlite import SQLiteTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream

ALICE = {"authorization": "Bearer alice-key"}
BOB = {"authorization": "Bearer bob-key"}
ADMIN = {"authorization": "Bearer admin-key"}
HELLO = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("ALICE_KEY", "alice-key")
    monkeypatch.setenv("BOB_KEY", "bob-key")
    monkeypatch.setenv("ADMIN_KEY", "admin-key")
    return {
        "api_keys": [
            {"name": "alice", "key_env": "ALICE_KEY"},
            {"name": "bob", "key_env": "BOB_KEY"},
        ],
        "admin_key_env": "ADMIN_KEY",
    }


@pytest.fixture
async def gateway(
    fake_upstream: FakeUpstream, keys: dict[str, Any]
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    cfg = routing_config(
        fake_upstream.base_url, server=keys, feedback={"labels": {"solved": 1.0, "partial": 0.5}}
    )
    app = create_app(cfg, store=MemoryTraceStore())
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        yield app, client
    await app.shutdown()


async def answered(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert response.status_code == 200
    return response.headers["x-crossroads-trace-id"]


async def test_feedback_is_stored_with_the_trace_and_observed_once(
    gateway: tuple[Gateway, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = gateway
    trace_id = await answered(client, ALICE)
    observed: list[tuple[str, float]] = []

    async def observe(trace_id: str, reward: float) -> bool:
        observed.append((trace_id, reward))
        return True

    monkeypatch.setattr(app.pipeline.selectors("default")[0], "observe", observe, raising=False)
    body = {"trace_id": trace_id, "reward": "partial", "comment": "close", "metadata": {"step": 1}}
    first = await client.post("/v1/crossroads/feedback", json=body, headers=ALICE)
    assert first.status_code == 200, first.text
    assert first.headers["x-crossroads-feedback"] == "accepted"
    answer = first.json()
    assert (answer["reward"], answer["label"], answer["source"]) == (0.5, "partial", "client")
    assert (answer["decision"], answer["model"]) == ("default", "small")
    again = await client.post("/v1/crossroads/feedback", json=body, headers=ALICE)
    assert again.status_code == 200 and again.json() == answer  # the same result
    assert again.headers["x-crossroads-feedback"] == "duplicate"
    assert observed == [(trace_id, 0.5)]  # a repeat teaches nothing twice
    (stored,) = app.store.feedback(trace_id)
    assert (stored.reward, stored.comment, stored.key_name) == (0.5, "close", "alice")


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"reward": 1}, ALICE, 400, "invalid_request"),
        ("not json", ALICE, 400, "invalid_request"),
        ({"reward": 1.5}, ALICE, 422, "unprocessable"),
        ({"reward": "meh"}, ALICE, 422, "unprocessable"),
        ({"reward": 1}, {}, 401, "invalid_api_key"),
        ({"reward": 1}, {"authorization": "Bearer nope"}, 401, "invalid_api_key"),
        ({"reward": 1}, BOB, 403, "not_allowed"),
        ({"reward": 1, "trace_id": "0" * 24}, ADMIN, 404, "not_found"),
        ({"reward": 1, "comment": "x" * 70_000}, ALICE, 413, "payload_too_large"),
    ],
)
async def test_errors_are_in_the_api_format(
    gateway: tuple[Gateway, httpx.AsyncClient],
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    app, client = gateway
    trace_id = await answered(client, ALICE)
    if isinstance(body, dict) and "trace_id" not in body and "reward" in body and status != 400:
        body = {"trace_id": trace_id, **body}
    content = body.encode() if isinstance(body, str) else orjson.dumps(body)
    response = await client.post("/v1/crossroads/feedback", content=content, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert app.store.feedback(trace_id) == []


async def test_a_conflicting_repeat_is_409_and_other_sources_add(
    gateway: tuple[Gateway, httpx.AsyncClient],
) -> None:
    app, client = gateway
    trace_id = await answered(client, ALICE)
    post = client.post
    assert (
        await post(
            "/v1/crossroads/feedback", json={"trace_id": trace_id, "reward": "up"}, headers=ALICE
        )
    ).status_code == 200
    clash = await post(
        "/v1/crossroads/feedback", json={"trace_id": trace_id, "reward": "down"}, headers=ALICE
    )
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "conflict"
    grader = {"trace_id": trace_id, "reward": 0.0, "source": "grader"}
    assert (await post("/v1/crossroads/feedback", json=grader, headers=ADMIN)).status_code == 200
    assert [(f.source, f.reward) for f in app.store.feedback(trace_id)] == [
        ("client", 1.0),
        ("grader", 0.0),
    ]
    assert (await client.get("/v1/crossroads/feedback", headers=ALICE)).status_code == 405


async def test_inline_feedback_rides_on_a_later_request(
    gateway: tuple[Gateway, httpx.AsyncClient], fake_upstream: FakeUpstream
) -> None:
    app, http = gateway
    client = openai.AsyncOpenAI(
        base_url="http://gw/v1", api_key="alice-key", http_client=http, max_retries=0
    )
    first = await client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "step one"}]
    )
    trace_id = first.headers["x-crossroads-trace-id"]
    grade = orjson.dumps({"trace_id": trace_id, "reward": "solved", "source": "agent"}).decode()
    second = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "step two"}],
        metadata={"crossroads_feedback": grade, "run": "r1"},
    )
    assert second.headers["x-crossroads-feedback"] == "accepted"
    assert second.parse().choices[0].message.content
    assert [(f.source, f.reward, f.label) for f in app.store.feedback(trace_id)] == [
        ("agent", 1.0, "solved")
    ]
    assert fake_upstream.app.metadata[-1] == {
        "run": "r1"
    }  # the feedback is not the upstream's business
    bad = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "step three"}],
        metadata={"crossroads_feedback": '{"trace_id": "' + trace_id + '", "reward": 7}'},
    )
    assert bad.headers["x-crossroads-feedback"] == "unprocessable"  # served all the same
    assert bad.parse().choices[0].message.content


async def test_feedback_finds_a_trace_the_sqlite_writer_still_holds(
    fake_upstream: FakeUpstream, tmp_path: Any
) -> None:
    cfg = routing_config(fake_upstream.base_url)
    store = SQLiteTraceStore(tmp_path / "t.db", flush_interval_ms=60_000)  # never flushes
    app = create_app(cfg, store=store)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        trace_id = await answered(client, {})
        assert store.stats()["written"] == 0
        response = await client.post(
            "/v1/crossroads/feedback", json={"trace_id": trace_id, "reward": 0.75}
        )
    await app.shutdown()  # writes the trace
    assert response.status_code == 200, response.text
    ((trace, (feedback,)),) = store.labeled()
    assert (trace["trace_id"], feedback.reward) == (trace_id, 0.75)


@pytest.mark.parametrize("several_workers", [True, False])
async def test_a_trace_another_worker_still_holds_is_waited_for(
    fake_upstream: FakeUpstream, tmp_path: Any, several_workers: bool
) -> None:
    from crossroads.types import RecordedCaller, Route, Trace

    cfg = routing_config(fake_upstream.base_url, store={"flush_interval_ms": 2000})
    path = tmp_path / "t.db"
    app = create_app(cfg, store=SQLiteTraceStore(path, flush_interval_ms=5))
    app.several_workers = several_workers
    await app.startup()
    other = SQLiteTraceStore(path, flush_interval_ms=2000)  # another worker's writer
    other.start()
    other.record(
        Trace(
            "t-other",
            1.0,
            "auto",
            "chat",
            False,
            route=Route("small", "default", "first"),
            model="small",
            caller=RecordedCaller(),
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        response = await client.post(
            "/v1/crossroads/feedback", json={"trace_id": "t-other", "reward": 1}
        )
    other.close()
    await app.shutdown()
    assert response.status_code == (200 if several_workers else 404), response.text
