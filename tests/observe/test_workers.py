"""Several workers add up: snapshots merge (counters always, gauges only while fresh), and a
real ``crossroads serve --workers 2`` answers ``/metrics`` with both workers' requests."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from crossroads.observe.exposition import merge
from crossroads.observe.metrics import RequestMetrics
from crossroads.observe.workers import SnapshotDir, clear
from crossroads.types import Route, Trace
from tests.observe.test_metrics import scrape, value
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess


def _snapshot(requests: int, in_flight: int, age_s: float = 0.0) -> dict:
    metrics = RequestMetrics(frozenset({"auto"}))
    for _ in range(requests):
        trace = Trace("t", 0.0, "auto", "chat", False, latency_ms=3.0, model="m")
        trace.route = Route(model="m", decision="d", selection="first")
        metrics.observe(trace)
    snap = metrics.snapshot({"crossroads_endpoint_in_flight": {("u/m",): in_flight}})
    snap["written_at"] -= age_s
    return orjson.loads(orjson.dumps(snap))  # as another worker's file reads


def test_counters_and_histograms_add_up_gauges_only_from_fresh_workers() -> None:
    merged = merge([_snapshot(3, 2), _snapshot(4, 5), _snapshot(10, 7, age_s=60)], stale_s=5)
    requests = merged["crossroads_requests"]
    assert requests == {("auto", "d", "m", "", "openai_chat", "200"): 17}
    (histogram,) = merged["crossroads_request_duration_seconds"].values()
    assert sum(histogram[:-1]) == 17 and histogram[-1] == pytest.approx(17 * 0.003)
    assert merged["crossroads_endpoint_in_flight"] == {("u/m",): 7}  # the stale 7 is left out
    assert merged["crossroads_workers"] == {(): 2}


def test_snapshot_files_are_replaced_whole_and_others_are_read(tmp_path: Path) -> None:
    mine, theirs = SnapshotDir(tmp_path, 1), SnapshotDir(tmp_path, 2)
    mine.write(orjson.dumps(_snapshot(1, 0)))
    theirs.write(orjson.dumps(_snapshot(2, 0)))
    theirs.write(orjson.dumps(_snapshot(5, 0)))
    (tmp_path / "worker-3.json").write_bytes(b'{"torn')  # unreadable: skipped
    others = mine.others()
    assert [sum(v for _, v in o["counters"]["crossroads_requests"]) for o in others] == [5]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "worker-1.json",
        "worker-2.json",
        "worker-3.json",
    ]
    clear(tmp_path)
    assert list(tmp_path.iterdir()) == []


def _config(base_url: str) -> dict:
    return {
        "upstreams": [{"name": "fake", "base_url": base_url}],
        "models": [{"name": "small", "upstream": "fake", "upstream_model": "s"}],
        "store": {"traces": "memory"},
        "metrics": {"flush_interval_s": 0.2},
    }


def _worker_requests(directory: Path) -> dict[str, float]:
    out = {}
    for path in directory.glob("worker-*.json"):
        snap = orjson.loads(path.read_bytes())
        out[path.name] = sum(v for _, v in snap["counters"]["crossroads_requests"])
    return out


def test_two_workers_aggregate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_upstream: FakeUpstream
) -> None:
    shared = tmp_path / "metrics"
    monkeypatch.setenv("CROSSROADS_METRICS_DIR", str(shared))
    chat = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection: either worker
    with (
        GatewayProcess(_config(fake_upstream.base_url), tmp_path, workers=2) as gw,
        httpx.Client(base_url=gw.url, limits=fresh, timeout=20) as client,
    ):
        sent = 0
        # Until both workers have served some (the kernel picks the worker per connection).
        while sent < 40 or min(_worker_requests(shared).values(), default=0) == 0:
            assert client.post("/v1/chat/completions", json=chat).status_code == 200
            sent += 1
            assert sent < 400, f"one worker served everything: {_worker_requests(shared)}"
        deadline = time.monotonic() + 20
        seen = []
        while True:  # each scrape reaches either worker; others' counts trail by one flush
            m = scrape(client.get("/metrics").text)
            seen.append(value(m, "crossroads_requests_total"))
            assert seen[-1] <= sent
            if seen[-1] == sent and value(m, "crossroads_workers") == 2:
                break
            assert time.monotonic() < deadline, f"scrapes saw {seen}, sent {sent}"
            time.sleep(0.1)
        while sum(_worker_requests(shared).values()) < sent:  # files trail by one flush
            assert time.monotonic() < deadline, _worker_requests(shared)
            time.sleep(0.1)
        # Every worker has published all it served: whichever answers, the totals are whole.
        for _ in range(6):
            m = scrape(client.get("/metrics").text)
            assert value(m, "crossroads_requests_total", model="small", status="200") == sent
            assert value(m, "crossroads_request_duration_seconds_count") == sent
            assert value(m, "crossroads_endpoint_circuit", endpoint="fake/s", state="closed") == 2
        assert len(_worker_requests(shared)) == 2
