"""Hot reload: the admin endpoint and SIGHUP serve the changed config file; a bad one is
refused with its reason while the old one keeps serving; requests in flight finish on the
old engine. Under load, in a real ``crossroads serve`` process, no request fails."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from crossroads.gateway import create_app
from crossroads.gateway.app import Gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

ADMIN = {"authorization": "Bearer admin-key"}
HELLO = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}


def config(base_url: str, default: list[str], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "server": {"admin_key_env": "ADMIN_KEY"},
        "upstreams": [{"name": "fake", "base_url": base_url, "timeouts": {"total": 10}}],
        "models": [
            {"name": "small", "upstream": "fake", "upstream_model": "s"},
            {"name": "big", "upstream": "fake", "upstream_model": "b"},
        ],
        "default": {"models": default},
        "store": {"traces": "memory"},
    }
    data.update(changes)
    return data


@pytest.fixture
async def served(
    fake_upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient, Path]]:
    from crossroads.config import load_config

    monkeypatch.setenv("ADMIN_KEY", "admin-key")
    path = tmp_path / "crossroads.yaml"
    path.write_text(yaml.safe_dump(config(fake_upstream.base_url, ["small"])))
    app = create_app(load_config(path), config_path=path)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        yield app, client, path
    await app.shutdown()


async def model_of(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/chat/completions", json=HELLO)
    assert response.status_code == 200, response.text
    return response.headers["x-crossroads-model"]


async def test_the_admin_endpoint_serves_the_changed_file(
    served: tuple[Gateway, httpx.AsyncClient, Path], fake_upstream: FakeUpstream
) -> None:
    app, client, path = served
    assert await model_of(client) == "small"
    dispatcher = app.dispatcher
    changed = config(
        fake_upstream.base_url, ["big"], entrypoints=[{"name": "auto"}, {"name": "fresh"}]
    )
    path.write_text(yaml.safe_dump(changed))
    assert (await client.post("/v1/crossroads/admin/reload")).status_code == 401
    done = await client.post("/v1/crossroads/admin/reload", headers=ADMIN)
    assert done.status_code == 200, done.text
    assert done.json()["generation"] == 1 and done.json()["upstreams_replaced"] == []
    assert await model_of(client) == "big"
    assert app.dispatcher is dispatcher  # models and upstreams unchanged: endpoint state kept
    fresh = await client.post("/v1/chat/completions", json={**HELLO, "model": "fresh"})
    assert fresh.status_code == 200
    assert "fresh" in (await client.get("/v1/models")).text
    assert 'entrypoint="fresh"' in (await client.get("/metrics")).text
    wrong = await client.get("/v1/crossroads/admin/reload", headers=ADMIN)
    assert wrong.status_code == 405


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("default: {models: [nope]}\n", "invalid"),
        (": not yaml [", "invalid"),
        ("REPLACE_PORT", "server"),
    ],
)
async def test_a_bad_config_is_refused_and_the_old_one_serves(
    served: tuple[Gateway, httpx.AsyncClient, Path],
    fake_upstream: FakeUpstream,
    text: str,
    reason: str,
) -> None:
    app, client, path = served
    if text == "REPLACE_PORT":
        changed = config(fake_upstream.base_url, ["big"])
        changed["server"]["port"] = 9999
        text = yaml.safe_dump(changed)
    else:
        text = yaml.safe_dump(config(fake_upstream.base_url, ["small"]))[:0] + text
    path.write_text(text)
    refused = await client.post("/v1/crossroads/admin/reload", headers=ADMIN)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "reload_refused" and reason in error["message"]
    assert "old config keeps serving" in error["message"]
    assert await model_of(client) == "small"
    assert app.reloader.generation == 0


async def test_a_request_in_flight_finishes_on_the_old_engine(
    served: tuple[Gateway, httpx.AsyncClient, Path], fake_upstream: FakeUpstream
) -> None:
    app, client, path = served
    fake_upstream.config.delay = 0.5
    slow = asyncio.create_task(client.post("/v1/chat/completions", json=HELLO))
    while app.engine.in_flight == 0:
        await asyncio.sleep(0.01)
    old = app.engine
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(old.in_flight == 0)

    old.pipeline.aclose = aclose  # type: ignore[method-assign]
    path.write_text(yaml.safe_dump(config(fake_upstream.base_url, ["big"])))
    assert (await client.post("/v1/crossroads/admin/reload", headers=ADMIN)).status_code == 200
    assert app.engine is not old
    assert closed == []  # its selectors still serve the request in flight
    response = await slow
    assert response.status_code == 200 and response.headers["x-crossroads-model"] == "small"
    assert old.in_flight == 0
    for _ in range(50):
        if closed:
            break
        await asyncio.sleep(0.02)
    assert closed == [True]  # closed once, after its last request


def test_sighup_and_the_endpoint_reload_under_load_without_a_failed_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_KEY", "admin-key")
    upstream = FakeUpstream(models=["s", "b"], chunks=3, delay=0.02, chunk_delay=0.005)
    with upstream, GatewayProcess(config(upstream.base_url, ["small"]), tmp_path / "gw") as gw:
        path = tmp_path / "gw" / "config.yaml"
        outcome = asyncio.run(_load_while_reloading(gw, path, upstream.base_url))
    assert outcome["failures"] == [], outcome["failures"][:5]
    assert outcome["requests"] >= 100
    assert {"small", "big"} <= outcome["models"]  # both configs served
    assert outcome["refused"] == 422
    assert outcome["generations"] == 6


async def _load_while_reloading(gw: GatewayProcess, path: Path, base_url: str) -> dict[str, Any]:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="-", max_retries=0, timeout=30)
    stop = asyncio.Event()
    failures: list[str] = []
    models: set[str] = set()
    count = 0

    async def worker(i: int) -> None:
        nonlocal count
        while not stop.is_set():
            try:
                if i % 2:
                    raw = await client.chat.completions.with_raw_response.create(
                        model="auto", messages=[{"role": "user", "content": f"hi {i}"}]
                    )
                    assert raw.parse().choices[0].message.content
                    models.add(raw.headers["x-crossroads-model"])
                else:
                    stream = await client.chat.completions.create(
                        model="auto",
                        messages=[{"role": "user", "content": f"stream {i}"}],
                        stream=True,
                    )
                    text = "".join(
                        [c.choices[0].delta.content or "" async for c in stream if c.choices]
                    )
                    assert text
                count += 1
            except Exception as exc:  # every failure is a test failure
                failures.append(f"{type(exc).__name__}: {exc}")

    workers = [asyncio.create_task(worker(i)) for i in range(8)]
    generations = 0
    refused = None
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as admin:
        for round_ in range(6):
            await asyncio.sleep(0.4)
            default = ["big"] if round_ % 2 == 0 else ["small"]
            changed = config(base_url, default)
            if round_ == 3:  # a new upstream client too: the old one retires when idle
                changed["upstreams"][0]["timeouts"]["total"] = 11
            path.write_text(yaml.safe_dump(changed))
            if round_ % 2:
                assert gw.proc is not None
                os.kill(gw.proc.pid, signal.SIGHUP)
                deadline = time.monotonic() + 20
                while f"generation {round_ + 1}" not in gw.log:
                    assert time.monotonic() < deadline, gw.log
                    await asyncio.sleep(0.05)
            else:
                done = await admin.post("/v1/crossroads/admin/reload", headers=ADMIN)
                assert done.status_code == 200, done.text
            generations += 1
        await asyncio.sleep(0.3)
        path.write_text("default: {models: [nope]}\n")
        refused = (await admin.post("/v1/crossroads/admin/reload", headers=ADMIN)).status_code
        await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*workers)
    await client.close()
    return {
        "failures": failures,
        "requests": count,
        "models": models,
        "refused": refused,
        "generations": generations,
    }


async def test_a_reload_serves_the_artifact_a_promotion_switched_to(
    fake_upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossroads.config import load_config
    from crossroads.eval.promote import switch_pointer
    from tests.gateway.test_learned_selection import mean_artifact

    monkeypatch.setenv("ADMIN_KEY", "admin-key")
    mean_artifact(tmp_path / "v1.joblib", small=0.9, big=0.5)  # prefers small
    mean_artifact(tmp_path / "v2.joblib", small=0.2, big=0.8)  # prefers big
    live = tmp_path / "live.joblib"
    live.symlink_to("v1.joblib")
    selection = {"method": "router", "router": str(live), "model_map": {"big-key": "big"}}
    path = tmp_path / "crossroads.yaml"
    data = config(fake_upstream.base_url, ["big", "small"])
    data["default"]["selection"] = selection
    path.write_text(yaml.safe_dump(data))
    app = create_app(load_config(path), config_path=path)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        assert await model_of(client) == "small"
        switch_pointer(live, tmp_path / "v2.joblib")
        assert await model_of(client) == "small"  # loaded once: nothing changes until a reload
        done = await client.post("/v1/crossroads/admin/reload", headers=ADMIN)
        assert done.status_code == 200, done.text
        assert done.json()["routers"][0]["artifact"] == str(live)
        assert await model_of(client) == "big"
    await app.shutdown()


def test_with_several_workers_the_endpoint_reloads_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker that answers validates and reloads the file, then has uvicorn replace
    every worker by one that reads it: afterwards no connection reaches the old config."""
    monkeypatch.setenv("ADMIN_KEY", "admin-key")
    upstream = FakeUpstream(models=["s", "b"])
    with (
        upstream,
        GatewayProcess(config(upstream.base_url, ["small"]), tmp_path / "gw", workers=2) as gw,
    ):
        path = tmp_path / "gw" / "config.yaml"

        def models(n: int) -> set[str]:
            seen = set()
            for _ in range(n):  # a new connection each: the kernel spreads them over workers
                r = httpx.post(gw.base_url + "/chat/completions", json=HELLO, timeout=10)
                assert r.status_code == 200, r.text
                seen.add(r.headers["x-crossroads-model"])
            return seen

        assert models(10) == {"small"}
        path.write_text(yaml.safe_dump(config(upstream.base_url, ["big"])))
        done = httpx.post(gw.url + "/v1/crossroads/admin/reload", headers=ADMIN, timeout=30)
        assert done.status_code == 200, done.text
        assert done.json()["workers"] == "replacing every worker"
        deadline = time.monotonic() + 60
        while (seen := models(40)) != {"big"}:  # until both replacements serve
            assert time.monotonic() < deadline, (seen, gw.log)
            time.sleep(0.2)
