"""The admin API and the page at /ui, in process: auth, headers, filters, pages, bad input,
bounds, and reads that never hold the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossroads.exceptions import ConfigError
from crossroads.gateway import create_app
from crossroads.gateway.app import Gateway
from crossroads.store.base import TraceQuery
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream

ADMIN = {"authorization": "Bearer the-admin-key"}


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSROADS_ADMIN", "the-admin-key")
    monkeypatch.setenv("KEY_A", "sk-key-a")


def config(base_url: str, **ui: Any) -> Any:
    return routing_config(
        base_url,
        server={
            "admin_key_env": "CROSSROADS_ADMIN",
            "api_keys": [{"name": "a", "key_env": "KEY_A", "team": "search"}],
        },
        teams=[{"name": "search"}],
        ui=ui,
    )


@pytest.fixture
async def client(
    fake_upstream: FakeUpstream, admin_env: None
) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    app = create_app(config(fake_upstream.base_url, reference_model="big"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c, app
    await app.shutdown()


async def chat(c: httpx.AsyncClient, text: str, model: str = "auto") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 20}
    return await c.post(
        "/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-key-a"}
    )


async def test_the_dashboard_is_off_without_an_admin_key(fake_upstream: FakeUpstream) -> None:
    app = create_app(routing_config(fake_upstream.base_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        for path in ("/ui/", "/ui/dashboard.js", "/v1/crossroads/admin/stats"):
            answer = await c.get(path, headers=ADMIN)
            assert answer.status_code == 403
            assert answer.json()["error"]["code"] == "admin_api_disabled"
    await app.shutdown()


async def test_the_api_needs_the_admin_key_and_the_page_is_a_shell(
    client: tuple[httpx.AsyncClient, Gateway],
) -> None:
    c, _ = client
    for headers in ({}, {"authorization": "Bearer sk-key-a"}, {"authorization": "Bearer nope"}):
        answer = await c.get("/v1/crossroads/admin/traces", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_api_key"
    page = await c.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "the-admin-key" not in page.text
    ok = await c.get("/v1/crossroads/admin/settings", headers=ADMIN)
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    assert ok.json()["reference_model"] == "big"
    assert [m["name"] for m in ok.json()["models"]] == ["small", "big"]


async def test_static_files_have_their_types_cache_headers_and_a_strict_policy(
    client: tuple[httpx.AsyncClient, Gateway],
) -> None:
    c, _ = client
    moved = await c.get("/ui")
    assert (moved.status_code, moved.headers["location"]) == (308, "/ui/")
    for path, kind in (
        ("/ui/", "text/html"),
        ("/ui/dashboard.js", "text/javascript"),
        ("/ui/crossroads.css", "text/css"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ):
        answer = await c.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith(kind)
        assert answer.headers["x-content-type-options"] == "nosniff"
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        etag = answer.headers["etag"]
        again = await c.get(path, headers={"if-none-match": etag})
        assert (again.status_code, again.content) == (304, b"")
    assert (await c.get("/ui/../crossroads/config/ui.py")).status_code == 404
    assert (await c.get("/ui/missing.js")).status_code == 404
    assert (await c.post("/ui/")).status_code == 405
    assert (await c.post("/v1/crossroads/admin/traces", headers=ADMIN)).status_code == 405


async def test_traces_list_filters_and_pages(client: tuple[httpx.AsyncClient, Gateway]) -> None:
    c, app = client
    sent = []
    for text in ("hello", "python please", "hi again", "rust too", "bye"):
        sent.append((await chat(c, text)).headers["x-crossroads-trace-id"])
    assert (await chat(c, "x", model="nope")).status_code == 404
    app.store.flush()
    url = "/v1/crossroads/admin/traces"
    everything = (await c.get(url, headers=ADMIN)).json()
    assert len(everything["data"]) == 6 and everything["next_cursor"] is None
    assert [r["trace_id"] for r in everything["data"][1:]] == sent[::-1]
    coding = (await c.get(url, params={"decision": "coding"}, headers=ADMIN)).json()["data"]
    assert [r["trace_id"] for r in coding] == [sent[3], sent[1]]
    assert all(r["model"] == "big" and r["team"] == "search" for r in coding)
    # The default decision could have sent "hello" to big: that is what it saved.
    hello = next(r for r in everything["data"] if r["trace_id"] == sent[0])
    saved = hello["counterfactual"]
    assert saved["max_candidate_model"] == "big"
    assert saved["max_candidate"] == pytest.approx(
        (hello["prompt_tokens"] * 3 + hello["completion_tokens"] * 15) / 1e6
    )
    errors = (await c.get(url, params={"status": "error"}, headers=ADMIN)).json()["data"]
    assert [r["status"] for r in errors] == [404]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2, "status": "ok"}
    while True:
        page = (await c.get(url, params=params, headers=ADMIN)).json()
        seen += [r["trace_id"] for r in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == sent[::-1]
    prefix = (await c.get(url, params={"q": sent[2][:20]}, headers=ADMIN)).json()["data"]
    assert sent[2] in [r["trace_id"] for r in prefix]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("limit=ten", "limit"),
        ("status=maybe", "status"),
        ("window=-5", "window"),
        ("window=nan", "window"),
        ("since=10&window=60", "window"),
        ("since=20&until=10", "since"),
        ("cursor=garbage", "cursor"),
        ("limit=1&limit=2", "limit"),
        ("modle=big", "modle"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    client: tuple[httpx.AsyncClient, Gateway], query: str, param: str
) -> None:
    c, _ = client
    answer = await c.get(f"/v1/crossroads/admin/traces?{query}", headers=ADMIN)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


async def test_one_trace_has_its_decision_path_and_counterfactual(
    client: tuple[httpx.AsyncClient, Gateway],
) -> None:
    c, app = client
    trace_id = (await chat(c, "write python")).headers["x-crossroads-trace-id"]
    app.store.flush()
    t = (await c.get(f"/v1/crossroads/admin/traces/{trace_id}", headers=ADMIN)).json()
    route = t["route"]
    assert route["rule_path"] == ["coding: keyword:code=T"]
    signal = route["signals"]["keyword:code"]
    assert signal["matched"] and signal["elapsed_ms"] >= 0
    assert [c["model"] for c in route["candidates"]] == ["big"]
    (attempt,) = t["attempts"]
    assert attempt["outcome"] == "ok" and 0 <= attempt["at_ms"] <= t["latency_ms"]
    assert t["caller"]["team"] == "search"
    cf = t["counterfactual"]
    assert cf["max_candidate"] == pytest.approx(t["cost"])  # big was the only candidate
    assert cf["reference_model"] == "big" and cf["reference"] == pytest.approx(t["cost"])
    missing = await c.get("/v1/crossroads/admin/traces/nope", headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "trace_not_found"
    assert (await c.get("/v1/crossroads/admin/nothing", headers=ADMIN)).status_code == 404


async def test_stats_aggregate_the_window(client: tuple[httpx.AsyncClient, Gateway]) -> None:
    c, app = client
    for text in ("hello", "python", "hi"):
        await chat(c, text)
    await chat(c, "x", model="nope")
    app.store.flush()
    stats = (await c.get("/v1/crossroads/admin/stats?window=600&buckets=6", headers=ADMIN)).json()
    assert (stats["requests"], stats["errors"]) == (4, 1)
    assert stats["decisions"] == {"default": 2, "coding": 1, "(none)": 1}
    assert sum(stats["series"]["requests"]) == 4 and len(stats["series"]["t"]) == 6
    assert stats["latency_ms"]["p50"] is not None
    rows = app.store.search(TraceQuery(status="ok"))
    actual = sum(r["cost"] for r in rows)
    spend = stats["spend"]
    assert spend["priced_requests"] == 3
    assert spend["actual"] == pytest.approx(actual)
    at_big = sum((r["prompt_tokens"] * 3 + r["completion_tokens"] * 15) / 1e6 for r in rows)
    assert spend["max_candidate"] == pytest.approx(at_big)  # big is a candidate of both
    assert spend["reference"] == pytest.approx(at_big)
    assert spend["savings_vs_max_candidate"] == pytest.approx(at_big - actual) and at_big > actual
    only = (await c.get("/v1/crossroads/admin/stats?decision=coding", headers=ADMIN)).json()
    assert only["requests"] == 1 and only["spend"]["savings_vs_max_candidate"] == 0


async def test_reads_run_off_the_event_loop_and_are_bounded(
    fake_upstream: FakeUpstream, admin_env: None
) -> None:
    release = threading.Event()

    class SlowStore(MemoryTraceStore):
        def search(self, query: TraceQuery) -> list[dict[str, Any]]:
            release.wait(10)
            return super().search(query)

    app = create_app(config(fake_upstream.base_url, query_timeout_s=0.2), store=SlowStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        url = "/v1/crossroads/admin/traces"
        held = [asyncio.create_task(c.get(url, headers=ADMIN)) for _ in range(2)]
        await asyncio.sleep(0.05)
        # Both query slots are taken by blocked reads, yet the gateway answers...
        assert (await c.get("/health")).status_code == 200
        assert (await chat(c, "hello")).status_code == 200
        # ...and a third read waits its bound, then is told to come back.
        busy = await c.get(url, headers=ADMIN)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "store_unavailable"
        release.set()
        assert [(await t).status_code for t in held] == [200, 200]
    await app.shutdown()


def write_eval_report(directory: Path, dataset: str) -> None:
    directory.mkdir(parents=True)
    (directory / "index.html").write_text("<html></html>")
    router = {"name": "knn", "kind": "learned", "metrics": {"aiq": 0.7, "cpt95": float("inf")}}
    # json.dumps, as `crossroads eval` writes it: Infinity and NaN included.
    (directory / f"{dataset}.json").write_text(
        json.dumps({"dataset": dataset, "routers": [{**router, "points": [[0, 1]]}]})
    )
    (directory / f"{dataset}.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")


async def test_the_latest_evaluation_report(
    fake_upstream: FakeUpstream, admin_env: None, tmp_path: Path
) -> None:
    import os

    write_eval_report(tmp_path / "old", "first")
    write_eval_report(tmp_path / "new", "second")
    os.utime(tmp_path / "old" / "index.html", (1, 1))
    app = create_app(config(fake_upstream.base_url, eval_reports=str(tmp_path)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        report = (await c.get("/v1/crossroads/admin/eval", headers=ADMIN)).json()
        assert report["path"] == str(tmp_path / "new")
        (dataset,) = report["datasets"]
        assert dataset["dataset"] == "second" and dataset["plot"] == "second.png"
        assert dataset["routers"][0]["metrics"]["cpt95"] is None
        assert "points" not in dataset["routers"][0]
        plot = await c.get("/v1/crossroads/admin/eval/second.png", headers=ADMIN)
        assert plot.headers["content-type"] == "image/png" and plot.content.startswith(b"\x89PNG")
        for name in ("first.png", "..%2Fold%2Ffirst.png", "second.json"):
            answer = await c.get(f"/v1/crossroads/admin/eval/{name}", headers=ADMIN)
            assert answer.status_code == 404, name
    await app.shutdown()
    app = create_app(config(fake_upstream.base_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        answer = await c.get("/v1/crossroads/admin/eval", headers=ADMIN)
        assert answer.status_code == 404 and "ui.eval_reports" in answer.json()["error"]["message"]
    await app.shutdown()


async def test_endpoints_need_only_the_admin_key(
    client: tuple[httpx.AsyncClient, Gateway],
) -> None:
    c, _ = client
    body = (await c.get("/v1/crossroads/admin/endpoints", headers=ADMIN)).json()
    assert {e["state"] for e in body["data"]} == {"closed"}
    assert body["store"]["healthy"] is True


def test_the_reference_model_must_be_configured(fake_upstream: FakeUpstream) -> None:
    with pytest.raises(ConfigError, match=r"ui\.reference_model: unknown model 'gpt-9'"):
        routing_config(fake_upstream.base_url, ui={"reference_model": "gpt-9"})


async def test_a_failing_store_is_an_error_answer_not_a_crash(
    fake_upstream: FakeUpstream, admin_env: None
) -> None:
    class BrokenStore(MemoryTraceStore):
        def search(self, query: TraceQuery) -> list[dict[str, Any]]:
            raise RuntimeError("disk on fire")

    app = create_app(config(fake_upstream.base_url), store=BrokenStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        answer = await c.get("/v1/crossroads/admin/stats", headers=ADMIN)
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal_error"
        assert "disk on fire" not in answer.text
        assert (await c.get("/v1/crossroads/admin/settings", headers=ADMIN)).status_code == 200
    await app.shutdown()
