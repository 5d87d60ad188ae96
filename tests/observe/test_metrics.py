"""``GET /metrics`` after known traffic, read with prometheus-client's own parser: the gateway
in process against a fake upstream on loopback, the counts checked against the traffic and
against the traces the store holds."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crossroads.gateway import create_app
from crossroads.observe.metrics import FAMILIES, RequestMetrics
from crossroads.store.memory import MemoryTraceStore
from crossroads.types import Attempt, Caller, Route, SignalResult, Trace, Usage
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream

CHAT = "/v1/chat/completions"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(text: str) -> Samples:
    """Every sample of an exposition by (name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(ls) for (n, ls) in samples if n == name]


def body(text: str, model: str = "auto", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
async def gateway(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, MemoryTraceStore, FakeUpstream]]:
    monkeypatch.setenv("KEY_ALICE", "sk-alice")
    monkeypatch.setenv("KEY_BOB", "sk-bob")
    store = MemoryTraceStore()
    config = routing_config(
        fake_upstream.base_url,
        server={
            "api_keys": [
                {"name": "alice", "key_env": "KEY_ALICE", "team": "research"},
                {"name": "bob", "key_env": "KEY_BOB"},
            ]
        },
        teams=[{"name": "research"}],
        dispatch={
            "retries": {"max_attempts": 2, "backoff_base_ms": 1, "backoff_max_ms": 2},
            "breaker": {"consecutive_failures": 50},
        },
    )
    app = create_app(config, store=store)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=20
    ) as client:
        yield client, store, fake_upstream
    await app.shutdown()


ALICE = {"authorization": "Bearer sk-alice"}
BOB = {"authorization": "Bearer sk-bob"}


async def test_counts_after_known_traffic_match_the_traffic_and_the_traces(gateway) -> None:
    client, store, upstream = gateway
    for _ in range(3):
        assert (await client.post(CHAT, json=body("hello"), headers=ALICE)).status_code == 200
    for _ in range(2):
        assert (await client.post(CHAT, json=body("fix my python"), headers=BOB)).status_code == 200
    streamed = await client.post(CHAT, json=body("hi", stream=True), headers=ALICE)
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    assert (await client.post(CHAT, json=body("hi", "nope"), headers=ALICE)).status_code == 404
    bad = await client.post(CHAT, content=b"{not json", headers=ALICE)
    assert bad.status_code == 400
    assert (await client.post(CHAT, json=body("hi"))).status_code == 401  # no key
    direct = await client.post(CHAT, json=body("hi", "big"), headers=BOB)
    assert direct.status_code == 200
    messages = await client.post(
        "/v1/messages",
        json={"model": "auto", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
        headers=ALICE,
    )
    assert messages.status_code == 200

    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = scrape(r.text)

    ok = {"entrypoint": "auto", "decision": "default", "model": "small", "endpoint": "fake/s"}
    assert value(m, "crossroads_requests_total", **ok, format="openai_chat", status="200") == 4
    assert value(m, "crossroads_requests_total", format="anthropic_messages", status="200") == 1
    coding = {"entrypoint": "auto", "decision": "coding", "model": "big", "endpoint": "fake/b"}
    assert value(m, "crossroads_requests_total", **coding, status="200") == 2
    explicit = {"entrypoint": "big", "decision": "explicit", "model": "big"}
    assert value(m, "crossroads_requests_total", **explicit) == 1
    assert value(m, "crossroads_requests_total") == 11
    assert value(m, "crossroads_errors_total", entrypoint="unknown", status="404") == 1
    assert value(m, "crossroads_errors_total", status="404", code="model_not_found") == 1
    assert value(m, "crossroads_errors_total", status="400", code="invalid_request") == 1
    assert value(m, "crossroads_errors_total", status="401", code="invalid_api_key") == 1
    assert value(m, "crossroads_errors_total") == 3

    # Histograms: one observation per request; +Inf holds them all; the sum is the traces'.
    duration = "crossroads_request_duration_seconds"
    assert value(m, f"{duration}_count", **ok, status_class="2xx") == 5
    assert value(m, f"{duration}_bucket", **ok, le="+Inf") == 5
    assert value(m, f"{duration}_count") == 11
    traces = [store.get(t["trace_id"]) for t in store.recent(100)]
    assert value(m, f"{duration}_sum") == pytest.approx(sum(t["latency_ms"] for t in traces) / 1000)
    ttft = "crossroads_time_to_first_token_seconds"
    assert value(m, f"{ttft}_count", stream="true") == 1
    assert value(m, f"{ttft}_count", stream="false") == 7
    assert value(m, "crossroads_routing_duration_seconds_count", decision="default") == 5
    assert value(m, "crossroads_routing_duration_seconds_count", decision="explicit") == 1
    # The keyword signal ran for every request to the "auto" entrypoint.
    assert value(m, "crossroads_signal_duration_seconds_count", signal="keyword:code") == 7
    up = "crossroads_upstream_duration_seconds_count"
    assert value(m, up, model="small", endpoint="fake/s", outcome="ok") == 5
    assert value(m, up) == 8

    # Tokens and cost by key and team are what the traces settled.
    for key, team in (("alice", "research"), ("bob", "")):
        mine = [t for t in traces if (t["caller"] or {}).get("key_name") == key and t["usage"]]
        assert mine
        prompt = sum(t["usage"]["prompt_tokens"] for t in mine)
        completion = sum(t["usage"]["completion_tokens"] for t in mine)
        assert value(m, "crossroads_tokens_total", key=key, team=team, kind="prompt") == prompt
        assert value(m, "crossroads_tokens_total", key=key, kind="completion") == completion
        assert value(m, "crossroads_cost_usd_total", key=key) == pytest.approx(
            sum(t["cost"] for t in mine)
        )
    assert value(m, "crossroads_cost_usd_total", model="big") > 0

    # Live state: nothing in flight, every circuit closed, one worker.
    for endpoint in ("fake/s", "fake/b"):
        assert value(m, "crossroads_endpoint_in_flight", endpoint=endpoint) == 0
        assert value(m, "crossroads_endpoint_circuit", endpoint=endpoint, state="closed") == 1
        assert value(m, "crossroads_endpoint_circuit", endpoint=endpoint, state="open") == 0
    assert value(m, "crossroads_workers") == 1
    assert value(m, "crossroads_trace_queue_depth") == 0
    assert value(m, "crossroads_traces_written_total") == 11


async def test_retries_fallbacks_and_upstream_errors_are_counted(gateway) -> None:
    client, _, upstream = gateway
    upstream.set_fault("503", count=1)  # the first attempt fails, the retry answers
    assert (await client.post(CHAT, json=body("hello"), headers=ALICE)).status_code == 200
    upstream.set_fault("503", count=2)  # both attempts on small fail: big answers
    r = await client.post(CHAT, json=body("hello"), headers=ALICE)
    assert r.status_code == 200 and r.headers["x-crossroads-model"] == "big"
    upstream.set_fault("503", count=4)  # every attempt of the chain fails: 503
    assert (await client.post(CHAT, json=body("hello"), headers=ALICE)).status_code == 503

    m = scrape((await client.get("/metrics")).text)
    small, big = {"model": "small", "endpoint": "fake/s"}, {"model": "big", "endpoint": "fake/b"}
    errors = "crossroads_upstream_errors_total"
    assert value(m, errors, **small, category="http_503") == 1 + 2 + 2
    assert value(m, errors, **big, category="http_503") == 2
    assert value(m, "crossroads_retries_total", **small) == 1 + 1 + 1
    assert value(m, "crossroads_retries_total", **big) == 1 + 2
    assert value(m, "crossroads_fallbacks_total", from_model="small", to_model="big") == 2
    assert value(m, "crossroads_upstream_duration_seconds_count", outcome="error") == 7
    assert value(m, "crossroads_requests_total", model="big", status="200") == 1
    assert value(m, "crossroads_errors_total", status="503", code="upstream_status") == 1


async def test_labels_never_carry_what_clients_write(gateway) -> None:
    client, _, _ = gateway
    for i in range(20):
        r = await client.post(
            CHAT, json=body("hello", f"made-up-{i}", user=f"user-{i}"), headers=ALICE
        )
        assert r.status_code == 404
        assert (await client.post(CHAT, json=body(f"prompt-{i}", user=f"user-{i}"))).status_code
    text = (await client.get("/metrics")).text
    assert "made-up" not in text and "user-" not in text and "prompt-" not in text
    m = scrape(text)
    assert {s["entrypoint"] for s in series(m, "crossroads_requests_total")} == {"unknown", ""}
    assert len(series(m, "crossroads_errors_total")) == 2  # 404 unknown model, 401 no key
    assert value(m, "crossroads_errors_total", entrypoint="unknown", status="404") == 20


async def test_openmetrics_when_asked(gateway) -> None:
    client, _, _ = gateway
    await client.post(CHAT, json=body("hello"), headers=ALICE)
    r = await client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


async def _serve(config: Any, path: str = "/metrics", **request: Any) -> httpx.Response:
    app = create_app(config, store=MemoryTraceStore())
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            return await client.request(request.pop("method", "GET"), path, **request)
    finally:
        await app.shutdown()


async def test_admin_key_guards_metrics_when_asked(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_KEY", "sk-admin")
    guarded = {"require_admin_key": True}
    config = routing_config(
        fake_upstream.base_url, metrics=guarded, server={"admin_key_env": "ADMIN_KEY"}
    )
    assert (await _serve(config)).status_code == 401
    wrong = await _serve(config, headers={"authorization": "Bearer sk-nope"})
    assert wrong.status_code == 401
    right = await _serve(config, headers={"authorization": "Bearer sk-admin"})
    assert right.status_code == 200 and "crossroads_requests_total" in right.text
    off = await _serve(routing_config(fake_upstream.base_url, metrics=guarded))
    assert off.status_code == 403 and off.json()["error"]["code"] == "admin_api_disabled"


async def test_path_method_and_switch(fake_upstream: FakeUpstream) -> None:
    url = fake_upstream.base_url
    moved = routing_config(url, metrics={"path": "/internal/metrics"})
    assert (await _serve(moved, "/internal/metrics")).status_code == 200
    assert (await _serve(moved, "/metrics")).status_code == 404
    posted = await _serve(routing_config(url), method="POST")
    assert posted.status_code == 405
    assert (await _serve(routing_config(url, metrics={"enabled": False}))).status_code == 404


def test_tokens_without_key_labels_when_by_key_is_off() -> None:
    metrics = RequestMetrics(frozenset({"auto"}), by_key=False)
    trace = Trace("t", 0.0, "auto", "chat", False, latency_ms=5.0, model="m", cost=0.5)
    trace.route = Route(model="m", decision="d", selection="first", routing_ms=0.1)
    trace.usage = Usage(10, 4)
    trace.caller = Caller(key_name="alice", team="research")
    metrics.observe(trace)
    counters = metrics.snapshot({})["counters"]
    assert counters["crossroads_tokens"] == [
        [["m", "", "", "prompt"], 10],
        [["m", "", "", "completion"], 4],
    ]
    assert counters["crossroads_cost_usd"] == [[["m", "", ""], 0.5]]


def test_cache_lookups_by_outcome() -> None:
    metrics = RequestMetrics(frozenset({"auto"}))
    for outcome in ("hit", "hit", "miss", "store"):
        trace = Trace("t", 0.0, "auto", "chat", False, latency_ms=1.0, cache=outcome)
        trace.route = Route(model="m", decision="d", selection="first")
        metrics.observe(trace)
    counters = metrics.snapshot({})["counters"]["crossroads_cache_lookups"]
    assert {tuple(k): v for k, v in counters} == {
        ("auto", "d", "hit"): 2,
        ("auto", "d", "miss"): 1,
        ("auto", "d", "store"): 1,
    }


def test_histogram_buckets_and_signal_timeouts() -> None:
    metrics = RequestMetrics(frozenset({"auto"}))
    trace = Trace("t", 0.0, "auto", "chat", False, latency_ms=30.0)
    trace.route = Route(model="m", decision="d", selection="first", routing_ms=0.3)
    trace.route.signals = {
        "embedding:hard": SignalResult("embedding:hard", False, error="timed out", timed_out=True),
        "keyword:k": SignalResult("keyword:k", False, error="boom"),
    }
    trace.attempts = [
        Attempt("m", "u/m", "error", 12.0, category="timeout"),
        Attempt("m", "u/m", "ok", 5.0),
    ]
    metrics.observe(trace)
    snap = metrics.snapshot({})
    duration = dict(
        (tuple(k), v) for k, v in snap["histograms"]["crossroads_request_duration_seconds"]
    )
    (h,) = duration.values()
    bounds = FAMILIES["crossroads_request_duration_seconds"].buckets
    assert h[bounds.index(0.05)] == 1 and sum(h[:-1]) == 1  # 30 ms falls in the 50 ms bucket
    assert h[-1] == pytest.approx(0.03)
    errors = dict((tuple(k), v) for k, v in snap["counters"]["crossroads_signal_errors"])
    assert errors == {("embedding:hard", "timeout"): 1, ("keyword:k", "error"): 1}
    upstream = dict((tuple(k), v) for k, v in snap["counters"]["crossroads_upstream_errors"])
    assert upstream == {("m", "u/m", "timeout"): 1}
    assert dict((tuple(k), v) for k, v in snap["counters"]["crossroads_retries"]) == {
        ("m", "u/m"): 1
    }
    assert snap["counters"]["crossroads_fallbacks"] == []


def test_times_folded_in_batches_land_where_each_value_belongs() -> None:
    """Times wait in rows and are bucketed a batch at a time (sorted, a search per bucket
    boundary): every value, those on a boundary included (``le``), counts where a search
    per value would put it; requests without a time to first token add no observation."""
    metrics = RequestMetrics(frozenset({"auto"}))
    bounds_ms = [b * 1000 for b in FAMILIES["crossroads_request_duration_seconds"].buckets]
    times = [
        [0.2, 5.0, 7.5, 10.0, 49.9, 50.0, 2600.0, 400_000.0][i % 8] + i % 3 for i in range(2500)
    ]
    for i, ms in enumerate(times):  # 2500 requests: folds every 256 rows, and at the snapshot
        ttft = None if i % 4 == 0 else ms
        trace = Trace("t", 0.0, "auto", "chat", False, latency_ms=ms, ttft_ms=ttft)
        trace.route = Route(model="m", decision="d", selection="first", routing_ms=0.01)
        metrics.observe(trace)
    snap = metrics.snapshot({})

    def only(family: str) -> list[float]:
        (h,) = [h for _, h in snap["histograms"][family]]
        return h

    expected = [0] * (len(bounds_ms) + 1)
    for ms in times:
        expected[bisect_left(bounds_ms, ms)] += 1
    duration = only("crossroads_request_duration_seconds")
    assert duration[:-1] == expected
    assert duration[-1] == pytest.approx(sum(times) / 1000)
    ttft = only("crossroads_time_to_first_token_seconds")
    assert sum(ttft[:-1]) == 2500 - 625
    routing = only("crossroads_routing_duration_seconds")
    assert routing[0] == 2500 and sum(routing[:-1]) == 2500
    assert snap["counters"]["crossroads_requests"] == [
        [["auto", "d", "m", "", "openai_chat", "200"], 2500]
    ]
