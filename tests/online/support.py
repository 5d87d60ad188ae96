"""Building online selectors for tests, and a synthetic stream with a known best model."""

from __future__ import annotations

from typing import Any

import numpy as np

from crossroads.config import parse_config
from crossroads.online.base import OnlineSelector
from crossroads.selection import build_selector
from crossroads.state.base import StateBackend
from crossroads.state.memory import MemoryState
from crossroads.types import Candidate, RoutingRequest, SignalResult

MODELS = ["cheap", "mid", "strong"]
PRICES = {"cheap": 0.1, "mid": 1.0, "strong": 10.0}


def config(selection: dict[str, Any], state: dict[str, Any] | None = None) -> Any:
    """A config whose default decision selects among :data:`MODELS` with ``selection``."""
    return parse_config(
        {
            "upstreams": [{"name": "u", "kind": "mock"}],
            "models": [
                {"name": m, "upstream": "u", "price": {"input": p, "output": p}}
                for m, p in PRICES.items()
            ],
            "signals": [{"kind": "keyword", "name": "code", "keywords": ["python"]}],
            "state": state or {"backend": "memory"},
            "default": {"models": MODELS, "selection": selection},
        }
    )


def selector(
    selection: dict[str, Any],
    state: dict[str, Any] | None = None,
    backend: StateBackend | None = None,
) -> OnlineSelector:
    """A prepared selector of the default decision; syncs only when the test says so."""
    cfg = config(selection, state)
    s = build_selector(cfg.default.selection)
    assert isinstance(s, OnlineSelector)
    s.bind("default", MODELS, cfg)
    s.state_backend = backend if backend is not None else MemoryState()
    s.autosync = False
    s.prepare()
    return s


def request(trace_id: str, topic: str, tokens: int = 50) -> RoutingRequest:
    """A request whose ``keyword:code`` signal says ``topic``."""
    return RoutingRequest(
        text="x",
        prompt_tokens=tokens,
        trace_id=trace_id,
        signals={"keyword:code": SignalResult("keyword:code", topic == "code", topic)},
    )


def candidates() -> list[Candidate]:
    return [Candidate(m, 0.0) for m in MODELS]


# Mean quality per topic and model: "mid" is best for prose, "strong" for code.
MEANS = {"prose": [0.3, 0.8, 0.5], "code": [0.2, 0.4, 0.9]}


async def run_stream(
    s: OnlineSelector | None,
    steps: int,
    *,
    seed: int = 0,
    delay: int = 0,
    noise: float = 0.1,
    sync_every: int = 10,
    choices: list[str] | None = None,
) -> np.ndarray:
    """Regret per step (best mean minus the chosen model's mean); ``s=None``: uniform."""
    rng = np.random.default_rng(seed)
    regret = np.empty(steps)
    waiting: list[tuple[int, str, float]] = []
    for t in range(steps):
        topic = "code" if rng.random() < 0.5 else "prose"
        means = MEANS[topic]
        if s is None:
            arm = int(rng.integers(0, len(MODELS)))
        else:
            chosen = await s.aselect(request(f"t{t}", topic), candidates())
            arm = MODELS.index(chosen.model)
            q = float(np.clip(means[arm] + rng.normal(0, noise), 0, 1))
            waiting.append((t + delay, f"t{t}", q))
            while waiting and waiting[0][0] <= t:
                _, trace_id, quality = waiting.pop(0)
                assert await s.observe(trace_id, quality)
            if (t + 1) % sync_every == 0:
                await s.sync()
        regret[t] = max(means) - means[arm]
        if choices is not None:
            choices.append(MODELS[arm])
    return regret
