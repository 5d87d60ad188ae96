"""A linucb decision served by the gateway: the OpenAI SDK gets answers, the trace records the
choice's propensity, and feedback through ``Engine.observe`` reaches the learner."""

from __future__ import annotations

import httpx
import openai

from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream


async def test_a_linucb_decision_serves_and_records_propensity(
    fake_upstream: FakeUpstream,
) -> None:
    cfg = routing_config(
        fake_upstream.base_url,
        state={"backend": "memory"},
        decisions=[],
        default={
            "models": ["small", "big"],
            "selection": {
                "method": "linucb",
                "objective": {"lambda": 10.0},
                "features": {"signals": ["keyword:code"]},
                "max_explore": 0.5,
                "seed": 3,
            },
        },
    )
    store = MemoryTraceStore()
    app = create_app(cfg, store=store)
    await app.startup()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key="-", http_client=http)
    routes = []
    for i in range(12):
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": f"write python code {i}"}]
        )
        assert raw.parse().choices[0].message.content
        trace_id = raw.headers["x-crossroads-trace-id"]
        store.flush()
        route = store.get(trace_id)["route"]
        routes.append(route)
        assert route["decision"] == "default" and route["selection"] == "linucb"
        assert 0 < route["propensity"] <= 1
        chosen = next(c for c in route["candidates"] if c["model"] == route["model"])
        assert chosen["propensity"] == route["propensity"]
        quality = 1.0 if route["model"] == "small" else 0.2
        assert await app.engine.observe("default", trace_id, quality)
        assert not await app.engine.observe("default", trace_id, quality)  # taken once
    assert not await app.engine.observe("coding", "no-such-trace", 1.0)  # no learner there
    assert not await app.engine.observe("default", "no-such-trace", 1.0)
    selector = app.pipeline.selectors("default")[0]
    assert selector.stats_summary()["observed"] == 12
    await http.aclose()
    await app.shutdown()


async def test_feedback_on_an_answer_from_a_fallback_model_is_refused(
    fake_upstream: FakeUpstream,
) -> None:
    with FakeUpstream(models=["s"], chunks=1) as failing:
        failing.set_fault("503", count=100)
        cfg = routing_config(
            fake_upstream.base_url,
            upstreams=[
                {"name": "fake", "base_url": fake_upstream.base_url, "timeouts": {"total": 10}},
                {"name": "down", "base_url": failing.base_url, "timeouts": {"total": 10}},
            ],
            models=[
                {
                    "name": "small",
                    "upstream": "down",
                    "upstream_model": "s",
                    "price": {"input": 0.1, "output": 0.2},
                    "fallbacks": ["big"],
                },
                {
                    "name": "big",
                    "upstream": "fake",
                    "upstream_model": "b",
                    "price": {"input": 3.0, "output": 15.0},
                },
            ],
            state={"backend": "memory"},
            dispatch={"retries": {"max_attempts": 1}},
            decisions=[],
            default={
                "models": ["small", "big"],
                "selection": {
                    "method": "ema",
                    "max_explore": 0.0,
                    "priors": {"small": 0.9, "big": 0.5},
                    "prior_strength": 100,
                },
            },
        )
        store = MemoryTraceStore()
        app = create_app(cfg, store=store)
        await app.startup()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        client = openai.AsyncOpenAI(
            base_url="http://gw/v1", api_key="-", http_client=http, max_retries=0
        )
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
        trace_id = raw.headers["x-crossroads-trace-id"]
        store.flush()
        trace = store.get(trace_id)
        assert trace["route"]["model"] == "small" and trace["model"] == "big"
        assert trace["route"]["propensity"] == 1.0
        assert not await app.engine.observe("default", trace_id, 1.0)
        await http.aclose()
        await app.shutdown()
