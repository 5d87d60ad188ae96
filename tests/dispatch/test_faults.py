"""Fault injection through real ``crossroads serve`` processes on loopback.

Model ``m`` has three endpoints (fake upstreams a, b, c); ``backup`` has one (d); ``solo``
lives on a alone and falls back to ``backup``. Faults are switched on the fakes at run time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from crossroads.store.sqlite import SQLiteTraceStore
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

TIMEOUTS = {"connect": 1, "first_byte": 1, "read": 1, "total": 3}
DEADLINE_S = 6


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeUpstream]]:
    ups = {
        name: FakeUpstream(models=["s"], chunks=3, name=name, hang_timeout=30) for name in "abcd"
    }
    for up in ups.values():
        up.start()
    yield ups
    for up in ups.values():
        up.stop()


@pytest.fixture
def healthy(fakes: dict[str, FakeUpstream]) -> dict[str, FakeUpstream]:
    for up in fakes.values():
        up.set_fault(None)
    return fakes


def gateway_config(fakes: dict[str, FakeUpstream], db: Path, open_s: float = 1.0) -> dict[str, Any]:
    return {
        "dispatch": {
            "retries": {"max_attempts": 4, "backoff_base_ms": 10, "backoff_max_ms": 50},
            "breaker": {"consecutive_failures": 3, "open_s": open_s, "min_requests": 1000},
            "deadline_s": DEADLINE_S,
        },
        "upstreams": [
            {"name": n, "base_url": up.base_url, "timeouts": TIMEOUTS} for n, up in fakes.items()
        ],
        "models": [
            {
                "name": "m",
                "upstream_model": "s",
                "endpoints": [{"upstream": "a"}, {"upstream": "b"}, {"upstream": "c"}],
            },
            {"name": "backup", "upstream": "d", "upstream_model": "s"},
            {"name": "solo", "upstream": "a", "upstream_model": "s", "fallbacks": ["backup"]},
        ],
        "default": {"models": ["m", "backup"]},
        "store": {"traces": f"sqlite:///{db}", "flush_interval_ms": 20},
    }


@pytest.fixture
def gateway(healthy: dict[str, FakeUpstream], tmp_path: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(gateway_config(healthy, tmp_path / "traces.db"), tmp_path) as gw:
        yield gw


def ask(
    client: httpx.Client, text: str, model: str = "auto", stream: bool = False
) -> tuple[httpx.Response, str]:
    """One chat request; the answer's full text (streamed or not)."""
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    r = client.post("/v1/chat/completions", json=body)
    return r, answer_text(r, stream) if r.status_code == 200 else ""


def answer_text(r: httpx.Response, stream: bool) -> str:
    """The full answer of a response, streamed or not."""
    if not stream:
        return str(r.json()["choices"][0]["message"]["content"])
    parts, done = [], False
    for block in r.text.split("\n\n"):
        if block == "data: [DONE]":
            done = True
        elif block.startswith("data: "):
            event = orjson.loads(block[6:])
            assert "error" not in event, event
            parts.append(event["choices"][0]["delta"].get("content") or "")
    assert done
    return "".join(parts)


FAULTS = [
    "refuse",
    "500",
    "502",
    "503",
    "429:0.05",
    "slow_ttft:3",
    "hang",
    "malformed_json",
    "truncated_body",
    "cut_stream:0",
]


@pytest.mark.parametrize("fault", FAULTS)
def test_one_failing_endpoint_is_invisible_to_clients(
    gateway: GatewayProcess, fakes: dict[str, FakeUpstream], fault: str
) -> None:
    seen = fakes["a"].stats()["counts"].get("requests", 0)  # the fakes outlive each test
    fakes["a"].set_fault(fault)
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        # Balancing picks among idle endpoints at random: go on until a took its share.
        for i in range(60):
            stream = i % 2 == 1
            r, text = ask(client, f"question {i}", stream=stream)
            assert r.status_code == 200, r.text
            assert text == f"echo: question {i}"  # whole, once, not interleaved
            if i >= 11 and fakes["a"].stats()["counts"].get("requests", 0) - seen >= 2:
                break
    assert fakes["a"].stats()["counts"].get("requests", 0) - seen >= 2  # the fault was really hit
    with httpx.Client(base_url=gateway.url) as client:
        (a,) = [
            e
            for e in client.get("/v1/crossroads/endpoints").json()["data"]
            if e["endpoint"] == "a/s"
        ]
    assert a["failed"] >= 1


def test_cross_model_fallback_for_stream_and_non_stream(
    gateway: GatewayProcess, fakes: dict[str, FakeUpstream]
) -> None:
    fakes["a"].set_fault("503")
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for stream in (False, True):
            r, text = ask(client, "hello", model="solo", stream=stream)
            assert r.status_code == 200 and text == "echo: hello"
            assert r.headers["x-crossroads-model"] == "backup"
            if not stream:
                first = r
                assert int(r.headers["x-crossroads-attempts"]) >= 2
            # by the stream request a's circuit is open: straight to backup, one attempt
    r = first
    time.sleep(0.2)
    traces = SQLiteTraceStore(gateway.workdir / "traces.db")
    full = traces.get(r.headers["x-crossroads-trace-id"])
    outcomes = [(a["upstream"], a["outcome"]) for a in full["attempts"]]
    assert outcomes[-1] == ("d/s", "ok") and ("a/s", "error") in outcomes
    assert full["model"] == "backup" and full["route"]["model"] == "solo"


def test_no_request_hangs_past_the_deadline(
    gateway: GatewayProcess, fakes: dict[str, FakeUpstream]
) -> None:
    for up in fakes.values():
        up.set_fault("hang")
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        for stream in (False, True):
            started = time.monotonic()
            r, _ = ask(client, "anyone?", stream=stream)
            elapsed = time.monotonic() - started
            assert r.status_code in (503, 504), r.text
            assert elapsed < DEADLINE_S + 2
            assert r.json()["error"]["code"] in ("upstream_timeout", "all_endpoints_down")


def test_circuit_opens_at_the_threshold_and_recovers(
    healthy: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    fakes = healthy
    open_s = 4.0  # long enough that a loaded machine still sends the burst while it is open
    with GatewayProcess(
        gateway_config(fakes, tmp_path / "t.db", open_s=open_s), tmp_path
    ) as gateway:
        _circuit_scenario(gateway, fakes, open_s)


def _circuit_scenario(
    gateway: GatewayProcess, fakes: dict[str, FakeUpstream], open_s: float
) -> None:
    earlier = fakes["a"].stats()["counts"].get("fault 500", 0)  # the fakes outlive each test
    fakes["a"].set_fault("500")
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        started = time.monotonic()
        for i in range(100):  # until a failed consecutive_failures times (it opens then)
            assert ask(client, f"q{i}")[0].status_code == 200
            if fakes["a"].stats()["counts"].get("fault 500", 0) - earlier >= 3:
                break
        for i in range(12):  # while it is open, a gets nothing
            assert ask(client, f"p{i}")[0].status_code == 200
        hits = fakes["a"].stats()["counts"].get("fault 500", 0) - earlier
        assert time.monotonic() - started < open_s, "too slow to observe within open_s"
        assert hits == 3  # consecutive_failures; then the breaker keeps traffic away
        state = {e["endpoint"]: e for e in client.get("/v1/crossroads/endpoints").json()["data"]}
        assert (
            state["a/s"]["state"] == "open" and "3 consecutive failures" in state["a/s"]["reason"]
        )
        fakes["a"].set_fault(None)
        seen = fakes["a"].stats()["counts"].get("requests", 0)
        time.sleep(open_s + 0.1)
        for i in range(30):
            assert ask(client, f"r{i}")[0].status_code == 200
        state = {e["endpoint"]: e for e in client.get("/v1/crossroads/endpoints").json()["data"]}
        assert state["a/s"]["state"] == "closed"
        assert fakes["a"].stats()["counts"].get("requests", 0) > seen  # back in rotation


def test_everything_down_answers_503_at_once(
    gateway: GatewayProcess, fakes: dict[str, FakeUpstream]
) -> None:
    for up in fakes.values():
        up.set_fault("503")
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for _ in range(3):  # open every breaker
            ask(client, "x")
        started = time.monotonic()
        r, _ = ask(client, "x")
        elapsed = time.monotonic() - started
    assert r.status_code == 503 and r.json()["error"]["code"] == "all_endpoints_down"
    assert float(r.headers["retry-after"]) >= 1
    assert "a/s" in r.json()["error"]["message"] and "d/s" in r.json()["error"]["message"]
    assert elapsed < 0.5  # immediate, not after a timeout


def test_200_concurrent_requests_with_an_endpoint_failing_30_percent(
    gateway: GatewayProcess, fakes: dict[str, FakeUpstream]
) -> None:
    fakes["b"].set_fault("500", probability=0.3)
    traces = SQLiteTraceStore(gateway.workdir / "traces.db")
    before = traces.count()

    async def burst() -> list[str]:
        async with httpx.AsyncClient(
            base_url=gateway.url, timeout=60, limits=httpx.Limits(max_connections=200)
        ) as client:

            async def one(i: int) -> str:
                stream = i % 3 == 0
                body = {
                    "model": "auto",
                    "messages": [{"role": "user", "content": f"n{i}"}],
                    "stream": stream,
                }
                r = await client.post("/v1/chat/completions", json=body)
                assert r.status_code == 200, r.text
                assert '"error"' not in r.text
                assert answer_text(r, stream) == f"echo: n{i}"
                return r.headers["x-crossroads-trace-id"]

            return await asyncio.gather(*(one(i) for i in range(200)))

    ids = asyncio.run(burst())
    assert fakes["b"].stats()["counts"].get("fault 500", 0) > 0
    deadline = time.monotonic() + 20
    while traces.count() < before + 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert traces.count() == before + 200
    assert set(ids) <= {r["trace_id"] for r in traces.recent(10_000)}
