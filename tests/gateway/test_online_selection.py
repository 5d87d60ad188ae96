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
