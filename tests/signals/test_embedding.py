from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from crossroads.embeddings.batcher import MicroBatcher


def slow_encoder(calls: list[list[str]], delay: float = 0.02):
    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        assert threading.current_thread() is not threading.main_thread()  # off the loop
        time.sleep(delay)
        return np.array([[float(len(t))] for t in texts])

    return encode


async def test_idle_encoder_runs_at_once_and_busy_one_batches() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(slow_encoder(calls))
    assert (await batcher.encode("abc"))[0] == 3.0
    assert calls == [["abc"]]
    results = await asyncio.gather(*(batcher.encode("x" * i) for i in range(1, 21)))
    assert [r[0] for r in results] == list(range(1, 21))  # each caller gets its own vector
    assert len(calls) <= 3  # 20 concurrent callers: first alone, the rest batched
    assert sum(len(c) for c in calls) == 21


async def test_batches_are_capped() -> None:
    calls: list[list[str]] = []
    batcher = MicroBatcher(slow_encoder(calls), max_batch=4)
    await asyncio.gather(*(batcher.encode(str(i)) for i in range(10)))
    assert max(len(c) for c in calls) <= 4


async def test_encoder_failure_reaches_every_waiter_and_the_next_call_works() -> None:
    state = {"fail": True}

    def encode(texts: list[str]) -> np.ndarray:
        if state["fail"]:
            raise RuntimeError("model broke")
        return np.zeros((len(texts), 1))

    batcher = MicroBatcher(encode)
    results = await asyncio.gather(*(batcher.encode("t") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    state["fail"] = False
    assert (await batcher.encode("t")).shape == (1,)


async def test_embedding_signal_with_minilm(
    minilm_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(minilm_data_dir))
    from crossroads.config import parse_config
    from crossroads.embeddings.shared import reset_shared
    from crossroads.prompts import routing_request
    from crossroads.signals import build_signal

    reset_shared()
    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
            "models": [{"name": "a", "upstream": "u"}],
            "signals": [
                {
                    "kind": "embedding",
                    "name": "math",
                    "threshold": 0.3,
                    "exemplars": [
                        "solve this equation for x",
                        "compute the integral of a function",
                        "prove the theorem",
                    ],
                }
            ],
        }
    )
    signal = build_signal(cfg.signals[0])

    def req(text: str):
        return routing_request({"model": "auto", "messages": [{"role": "user", "content": text}]})

    math, cooking = await signal.evaluate(
        [req("what is the derivative of x squared plus 3x"), req("a recipe for banana bread")]
    )
    assert math.matched and not cooking.matched
    assert math.value > cooking.value
    assert math.detail in cfg.signals[0].exemplars
    reset_shared()
