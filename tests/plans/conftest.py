"""A gateway whose decisions run plans, over loopback, in front of the scriptable fake upstream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from crossroads.config import Config, parse_config
from crossroads.gateway import create_app
from crossroads.gateway.protocol import GatewayProtocol
from crossroads.store.memory import MemoryTraceStore
from tests.support.fake_upstream import FakeUpstream
from tests.support.server_thread import BackgroundServer

PRICES = {"cheap": (0.1, 0.2), "cheap2": (0.2, 0.4), "big": (3.0, 15.0), "judge": (1.0, 1.0)}


def plan_config(base_url: str, plan: dict[str, Any], **overrides: Any) -> Config:
    """Four priced models on one fake upstream; every routed request takes ``plan``."""
    data: dict[str, Any] = {
        "upstreams": [{"name": "fake", "base_url": base_url, "timeouts": {"total": 10}}],
        "models": [
            {"name": name, "upstream": "fake", "price": {"input": i, "output": o}}
            for name, (i, o) in PRICES.items()
        ],
        "default": {"models": ["cheap"], "plan": plan},
        "store": {"traces": "memory"},
    }
    data.update(overrides)
    return parse_config(data)


def script(**models: dict[str, Any]) -> dict[str, str]:
    """``metadata`` that scripts the fake upstream's answer per model."""
    return {"script": json.dumps(models)}


class PlanGateway:
    """A gateway (served over loopback) and its trace store; ``client`` is the openai SDK."""

    def __init__(self, config: Config) -> None:
        self.store = MemoryTraceStore()
        self.server = BackgroundServer(
            create_app(config, store=self.store), http=GatewayProtocol, lifespan="on"
        )

    def __enter__(self) -> PlanGateway:
        self.server.__enter__()
        self.client = openai.OpenAI(
            base_url=self.server.url + "/v1", api_key="-", max_retries=0, timeout=20
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.__exit__(*exc)

    def trace(self, trace_id: str) -> dict[str, Any]:
        """The stored trace (the client may read its answer a moment before it is stored)."""
        for _ in range(400):
            found = self.store.get(trace_id)
            if found is not None:
                return found
            time.sleep(0.005)
        raise AssertionError(f"trace {trace_id} was never stored")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(models=list(PRICES), chunks=3) as fake:
        yield fake


@pytest.fixture
def gateway_for(upstream: FakeUpstream) -> Iterator[Any]:
    """``gateway_for(plan)``: a started gateway whose default decision runs ``plan``."""
    opened: list[PlanGateway] = []

    def start(plan: dict[str, Any], **overrides: Any) -> PlanGateway:
        gw = PlanGateway(plan_config(upstream.base_url, plan, **overrides)).__enter__()
        opened.append(gw)
        return gw

    yield start
    for gw in opened:
        gw.__exit__(None, None, None)
