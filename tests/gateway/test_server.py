"""A real ``crossroads serve`` process on loopback, used with the official openai SDK."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from crossroads.store.sqlite import SQLiteTraceStore
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


def gateway_config(upstream_url: str, db: Path) -> dict:
    return {
        "upstreams": [{"name": "fake", "base_url": upstream_url, "timeouts": {"total": 20}}],
        "models": [
            {
                "name": "small",
                "upstream": "fake",
                "upstream_model": "s",
                "price": {"input": 0.1, "output": 0.2},
            },
            {
                "name": "big",
                "upstream": "fake",
                "upstream_model": "b",
                "price": {"input": 3, "output": 15},
                "capabilities": ["tools", "json"],
            },
        ],
        "signals": [{"kind": "keyword", "name": "code", "keywords": ["python"]}],
        "decisions": [{"name": "coding", "when": "keyword:code", "models": ["big"]}],
        "default": {"models": ["small"]},
        "store": {"traces": f"sqlite:///{db}", "flush_interval_ms": 20},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    tmp = tmp_path_factory.mktemp("serve")
    with FakeUpstream(models=["s", "b"], chunks=4) as upstream:
        db = tmp / "traces.db"
        with GatewayProcess(gateway_config(upstream.base_url, db), tmp) as gateway:
            yield gateway.url, tmp / "config.yaml", db


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=20)


def test_openai_sdk_non_stream(server) -> None:
    base, _, _ = server
    raw = client(base).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "write python"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: write python"
    assert completion.usage.completion_tokens > 0
    assert (
        raw.headers["x-crossroads-model"] == "big"
        and raw.headers["x-crossroads-decision"] == "coding"
    )
    assert len(raw.headers["x-crossroads-trace-id"]) == 24


def test_openai_sdk_stream(server) -> None:
    base, _, _ = server
    stream = client(base).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_sdk_tools_and_response_format(server) -> None:
    base, _, _ = server
    c = client(base)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    out = c.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert out.choices[0].message.tool_calls[0].function.name == "get_weather"
    out = c.chat.completions.create(
        model="big",
        messages=[{"role": "user", "content": "give json"}],
        response_format={"type": "json_object"},
    )
    json.loads(out.choices[0].message.content)


def test_openai_sdk_models_list_and_errors(server) -> None:
    base, _, _ = server
    c = client(base)
    assert [m.id for m in c.models.list()] == ["auto", "small", "big"]
    with pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="auto", messages=[])
    assert info.value.body["param"] == "messages"


def test_burst_of_500_concurrent_requests_keeps_every_trace_once(server) -> None:
    base, _, db = server
    before = SQLiteTraceStore(db).count()

    async def burst() -> list[str]:
        limits = httpx.Limits(max_connections=500)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:

            async def one(i: int) -> str:
                r = await http.post(
                    "/v1/chat/completions",
                    json={"model": "auto", "messages": [{"role": "user", "content": f"req {i}"}]},
                )
                assert r.status_code == 200
                assert r.json()["choices"][0]["message"]["content"] == f"echo: req {i}"
                return r.headers["x-crossroads-trace-id"]

            return await asyncio.gather(*(one(i) for i in range(500)))

    ids = asyncio.run(burst())
    assert len(set(ids)) == 500
    store = SQLiteTraceStore(db)
    deadline = time.monotonic() + 30
    while True:
        rows = [r["trace_id"] for r in store.recent(100_000) if r["trace_id"] in set(ids)]
        if len(rows) >= 500 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted(rows) == sorted(ids)  # every request once: none lost, none duplicated
    assert store.count() >= before + 500


def test_traces_command_lists_requests(server) -> None:
    base, config, _ = server
    client(base).chat.completions.create(
        model="small", messages=[{"role": "user", "content": "listed"}]
    )
    time.sleep(0.3)
    out = subprocess.run(
        [sys.executable, "-m", "crossroads.cli", "traces", "-c", str(config), "--json", "-n", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    row = json.loads(out.splitlines()[0])
    assert row["model"] == "small" and row["decision"] == "explicit" and row["status"] == 200
    assert row["prompt_tokens"] > 0 and row["cost"] > 0


def test_two_workers_share_the_port_and_the_trace_file(tmp_path: Path) -> None:
    """``--workers 2`` serves plain and streamed requests on one port with crossroads'
    protocol, and every trace lands in the one SQLite file the workers share. (Which worker
    answered is not visible from outside, so this does not prove both did.)"""
    with FakeUpstream(models=["s", "b"], chunks=2) as upstream:
        db = tmp_path / "traces.db"
        with GatewayProcess(gateway_config(upstream.base_url, db), tmp_path, workers=2) as gw:

            async def burst() -> list[str]:
                async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:

                    async def one(i: int) -> str:
                        r = await http.post(
                            "/v1/chat/completions",
                            json={
                                "model": "auto",
                                "stream": i % 2 == 0,
                                "messages": [{"role": "user", "content": f"w {i}"}],
                            },
                        )
                        assert r.status_code == 200
                        end = "data: [DONE]" if i % 2 == 0 else f"echo: w {i}"
                        assert end in r.text
                        return r.headers["x-crossroads-trace-id"]

                    return await asyncio.gather(*(one(i) for i in range(200)))

            ids = set(asyncio.run(burst()))
            assert len(ids) == 200
            store = SQLiteTraceStore(db)
            deadline = time.monotonic() + 30
            while store.count() < 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert {r["trace_id"] for r in store.recent(1000)} == ids
            assert "2 workers" in gw.log
