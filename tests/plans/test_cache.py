"""The semantic cache through the gateway: exact and similar hits, tenants kept apart, the
request's shape in the key, TTL and invalidation, hits on the trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from crossroads.plans.cache import precision_threshold
from tests.plans.conftest import script

EXACT = {"kind": "cache", "exact_only": True}


def chat(client: openai.OpenAI, text: str, **body):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], **body
    )
    return raw, raw.parse()


def test_an_exact_repeat_is_served_from_the_cache(gateway_for, upstream) -> None:
    gw = gateway_for(EXACT)
    raw, first = chat(gw.client, "capital of France?", metadata=script(cheap={"reply": "Paris."}))
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["cache"] == "store" and trace["cost"] > 0
    calls = upstream.app.stats["model cheap"]
    raw, again = chat(gw.client, "capital of France?", metadata=script(cheap={"reply": "Lyon."}))
    assert again.choices[0].message.content == "Paris."
    assert upstream.app.stats["model cheap"] == calls  # no upstream call
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["cache"] == "hit" and trace["cost"] == 0.0
    assert trace["stages"][0]["reason"] == "cache hit"
    # A stream is served from the cached answer too, as one coherent stream.
    chunks = list(
        gw.client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "capital of France?"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris."


def test_the_request_shape_is_part_of_the_key(gateway_for) -> None:
    gw = gateway_for(EXACT)
    chat(gw.client, "hi", metadata=script(cheap={"reply": "one"}))
    _, answer = chat(gw.client, "hi", temperature=0.9, metadata=script(cheap={"reply": "two"}))
    assert answer.choices[0].message.content == "two"
    raw, answer = chat(
        gw.client, "hi", max_tokens=2, metadata=script(cheap={"reply": "three four five"})
    )
    assert answer.choices[0].finish_reason == "length"
    _, answer = chat(gw.client, "hi", max_tokens=2, metadata=script(cheap={"reply": "six"}))
    assert answer.choices[0].message.content == "six"  # a cut answer was never stored


def test_never_across_tenants(gateway_for, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_A", "sk-a")
    monkeypatch.setenv("KEY_B", "sk-b")
    keys = [{"name": "a", "key_env": "KEY_A"}, {"name": "b", "key_env": "KEY_B"}]
    gw = gateway_for(EXACT, server={"api_keys": keys})
    base = gw.server.url + "/v1"
    a = openai.OpenAI(base_url=base, api_key="sk-a", max_retries=0)
    b = openai.OpenAI(base_url=base, api_key="sk-b", max_retries=0)
    chat(a, "secret plan?", metadata=script(cheap={"reply": "tenant a's answer"}))
    _, answer = chat(b, "secret plan?", metadata=script(cheap={"reply": "tenant b's answer"}))
    assert answer.choices[0].message.content == "tenant b's answer"
    _, answer = chat(a, "secret plan?")
    assert answer.choices[0].message.content == "tenant a's answer"


def test_ttl_and_invalidation(gateway_for) -> None:
    gw = gateway_for(EXACT)
    chat(gw.client, "q", metadata=script(cheap={"reply": "old"}))
    cache = gw.server.app.engine.plans["default"]
    (entry,) = cache.store_.entries_.values()
    entry.created -= 7200  # older than ttl_s (3600)
    _, answer = chat(gw.client, "q", metadata=script(cheap={"reply": "new"}))
    assert answer.choices[0].message.content == "new"
    assert asyncio.run(cache.invalidate(tenant="key:-")) == 1
    _, answer = chat(gw.client, "q", metadata=script(cheap={"reply": "newer"}))
    assert answer.choices[0].message.content == "newer"


def test_a_cache_in_front_of_a_cascade(gateway_for) -> None:
    plan = {
        "kind": "cache",
        "exact_only": True,
        "then": {
            "kind": "cascade",
            "stages": [{"models": ["cheap"], "accept": [{"rule": "checks"}]}, {"models": ["big"]}],
        },
    }
    gw = gateway_for(plan)
    raw, _ = chat(gw.client, "q", metadata=script(cheap={"reply": ""}, big={"reply": "big's"}))
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["plan"] == "cascade" and trace["cache"] == "store"
    raw, answer = chat(gw.client, "q")
    assert answer.choices[0].message.content == "big's"
    assert raw.headers["x-crossroads-model"] == "big"


def test_a_similar_prompt_hits(
    gateway_for, minilm_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(minilm_data_dir))
    gw = gateway_for({"kind": "cache", "similarity": 0.9})
    chat(gw.client, "What is the capital of France?", metadata=script(cheap={"reply": "Paris."}))
    raw, answer = chat(
        gw.client, "what is the capital of france", metadata=script(cheap={"reply": "x"})
    )
    assert answer.choices[0].message.content == "Paris."
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["cache"] == "hit" and 0.9 <= trace["stages"][0]["score"] < 1.0
    _, answer = chat(gw.client, "How do I bake bread?", metadata=script(cheap={"reply": "Knead."}))
    assert answer.choices[0].message.content == "Knead."


def test_precision_threshold() -> None:
    import numpy as np

    sim = np.array([0.99, 0.98, 0.97, 0.95, 0.9, 0.8])
    same = np.array([1, 1, 1, 0, 1, 0])
    assert precision_threshold(sim, same, precision=1.0) == 0.97
    assert precision_threshold(sim, same, precision=0.8) == 0.9
