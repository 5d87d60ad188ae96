"""Replay a routing dataset as a stream to measure online selectors (``crossroads simulate``).

The prompts arrive in a seeded random order, one per (virtual) second. Each goes through the
real selector (:mod:`crossroads.online`, memory state backend) with the candidates' costs as
estimated costs; the chosen model's quality, plus Gaussian noise of ``noise`` (clipped to
[0, 1]), comes back as feedback ``delay`` requests later, or never (a ``missing``
fraction). Statistics are exchanged with the backend every ``sync_every`` requests, as a
replica would every ``sync_interval_s``.

Reward is ``quality − λ·cost`` (the selectors' objective). Regret per request is measured
against the oracle (the best reward on that prompt) and against offline routers fitted, with
every model's outcome known, on the first ``prefix`` of the stream and used unchanged on the
rest; the best of them is chosen on the rest of the stream (an optimistic reference). λ,
unless given, is half the slope from the cheapest to the best model on the prefix, so that
neither always-cheapest nor always-best wins by construction.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossroads.eval.datasets import RoutingDataset, features_for, load_dataset
from crossroads.routers.base import fill_missing
from crossroads.routers.objectives import select
from crossroads.types import Candidate, RoutingRequest, SignalResult

ONLINE = ("linucb", "thompson", "ema")
TASK_SIGNAL = "domain:task"
CURVE_POINTS = 200


@dataclass
class Policy:
    """One policy over the stream: choices per request and what they earned."""

    name: str
    kind: str  # "online", "offline", "baseline"
    choices: np.ndarray  # model index per request (stream order)
    reward: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimulationResult:
    """A replay: the stream, every policy on it, and the settings that produced it."""

    dataset: str
    models: list[str]
    lam: float
    prefix: int  # requests in the prefix the offline routers were fitted on
    settings: dict[str, Any]
    features: str
    cost_unit: str
    oracle: np.ndarray  # best reward per request
    policies: list[Policy]
    seconds: float = 0.0

    def policy(self, name: str) -> Policy:
        """The policy called ``name``."""
        return next(p for p in self.policies if p.name == name)

    def summary(self, policy: Policy) -> dict[str, float]:
        """Final numbers of one policy: over the whole stream and after the prefix."""
        after = slice(self.prefix, None)
        best_offline = self.best_offline()
        row = {
            "quality": float(policy.quality.mean()),
            "cost": float(policy.cost.mean()),
            "reward": float(policy.reward.mean()),
            "regret_oracle": float((self.oracle - policy.reward).sum()),
            "quality_after": float(policy.quality[after].mean()),
            "cost_after": float(policy.cost[after].mean()),
            "regret_oracle_after": float((self.oracle[after] - policy.reward[after]).sum()),
        }
        if best_offline is not None:
            row["regret_offline_after"] = float(
                (best_offline.reward[after] - policy.reward[after]).sum()
            )
        return row

    def best_offline(self) -> Policy | None:
        """The offline router with the highest mean reward after the prefix."""
        offline = [p for p in self.policies if p.kind == "offline"]
        if not offline:
            return None
        return max(offline, key=lambda p: float(p.reward[self.prefix :].mean()))


def default_lambda(quality: np.ndarray, cost: np.ndarray) -> float:
    """Half the quality-per-cost slope from the cheapest model to the best one."""
    q, c = quality.mean(axis=0), cost.mean(axis=0)
    best, cheapest = int(np.argmax(q)), int(np.argmin(c))
    if best == cheapest or c[best] <= c[cheapest]:
        return 0.0
    return float(0.5 * (q[best] - q[cheapest]) / (c[best] - c[cheapest]))


def simulate(
    data: str | Path | RoutingDataset,
    selectors: tuple[str, ...] = ONLINE,
    *,
    seed: int = 0,
    delay: int = 0,
    noise: float = 0.0,
    missing: float = 0.0,
    prefix: float = 0.1,
    lam: float | None = None,
    routers: tuple[str, ...] = ("linear", "knn"),
    warm_start: bool = True,
    max_explore: float = 0.1,
    sync_every: int = 20,
    features: np.ndarray | None = None,
    limit: int | None = None,
    drift: float = 0.0,
    options: dict[str, dict[str, Any]] | None = None,
) -> SimulationResult:
    """Replay ``data`` through each of ``selectors`` (see the module docstring). With
    ``warm_start`` each contextual selector also runs warm-started from the best offline
    router (``<name>+warm``). ``drift``: from the middle of the stream the model best on the
    prefix loses this fraction of its quality, and the selectors forget (``decay``: buckets of
    50 requests, discount 0.7, 12 of them). ``options``: extra selection settings per selector name."""
    started = time.perf_counter()
    ds = data if isinstance(data, RoutingDataset) else load_dataset(data)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ds))[:limit]
    if features is None:
        features, feature_name = _features(ds, order)
    else:
        feature_name = "given"
        features = np.asarray(features)[order]
    quality = fill_missing(ds.outcomes.quality)[order]
    assert ds.outcomes.cost is not None
    cost = ds.outcomes.cost[order]
    x = np.asarray(features, dtype=np.float32)
    texts = [ds.prompts[i] for i in order] if ds.prompts is not None else None
    tasks = ds.tasks[order]
    n_prefix = max(1, int(round(prefix * len(order))))
    lam = default_lambda(quality[:n_prefix], cost[:n_prefix]) if lam is None else lam
    drifted = None
    if drift:
        # The model best on the prefix gets worse halfway: what a fitted router cannot see.
        drifted = int(np.argmax((quality[:n_prefix] - lam * cost[:n_prefix]).mean(axis=0)))
        quality = quality.copy()
        quality[len(order) // 2 :, drifted] *= 1.0 - drift
    reward = quality - lam * cost
    oracle = reward.max(axis=1)
    models = list(ds.outcomes.models)

    def policy(name: str, kind: str, choices: np.ndarray, **detail: Any) -> Policy:
        rows = np.arange(len(choices))
        return Policy(
            name,
            kind,
            choices,
            reward[rows, choices],
            quality[rows, choices],
            cost[rows, choices],
            detail,
        )

    policies = [policy("oracle", "baseline", reward.argmax(axis=1))]
    best_single = int(np.argmax(reward.mean(axis=0)))
    policies.append(
        policy(f"single:{models[best_single]}", "baseline", np.full(len(order), best_single))
    )
    policies.append(policy("random", "baseline", rng.integers(0, len(models), len(order))))
    fitted = _offline(routers, x, quality, cost, n_prefix, models, lam)
    for name, (choices, _router) in fitted.items():
        policies.append(policy(name, "offline", choices))
    best_router = None
    if fitted:
        rest = np.arange(n_prefix, len(order))
        best_name = max(fitted, key=lambda n: float(reward[rest, fitted[n][0][rest]].mean()))
        best_router = (best_name, fitted[best_name][1])
    decay = {"bucket_s": 50.0, "buckets": 12, "discount": 0.7} if drift else None
    stream = _Stream(
        quality, cost, x, texts, tasks, models, lam, delay, noise, missing, sync_every, seed, decay
    )
    with tempfile.TemporaryDirectory() as tmp:
        artifact = None
        if warm_start and best_router is not None:
            from crossroads.routers.artifact import save

            artifact = save(best_router[1], Path(tmp) / "prefix.joblib", name=best_router[0])
        for name in selectors:
            extra = dict((options or {}).get(name, {}))
            choices, detail = asyncio.run(stream.run(name, max_explore, extra, None))
            policies.append(policy(name, "online", choices, **detail))
            if artifact is not None and name != "ema":
                warm = {"router": str(artifact), "strength": 20.0}
                choices, detail = asyncio.run(stream.run(name, max_explore, extra, warm))
                policies.append(policy(f"{name}+warm", "online", choices, **detail))
    settings = {
        "seed": seed,
        "delay": delay,
        "noise": noise,
        "missing": missing,
        "prefix": prefix,
        "max_explore": max_explore,
        "sync_every": sync_every,
        "requests": len(order),
        "routers": list(routers),
        "drift": drift,
        "drifted_model": None if drifted is None else models[drifted],
    }
    return SimulationResult(
        ds.name,
        models,
        lam,
        n_prefix,
        settings,
        feature_name,
        ds.cost_unit,
        oracle,
        policies,
        time.perf_counter() - started,
    )


def _features(ds: RoutingDataset, order: np.ndarray) -> tuple[np.ndarray, str]:
    """Features of the replayed rows only (a ``limit`` embeds only the prompts it replays)."""
    if ds.prompts is None or len(order) == len(ds):
        features, name = features_for(ds, progress=True)
        return np.asarray(features)[order], name
    from crossroads.embeddings import EmbeddingCache

    texts = [ds.prompts[i] for i in order]
    return EmbeddingCache(ds.name).encode(texts, progress=True), "minilm-embedding"


def _offline(
    routers: tuple[str, ...],
    x: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    n_prefix: int,
    models: list[str],
    lam: float,
) -> dict[str, tuple[np.ndarray, Any]]:
    from crossroads.routers.base import Outcomes
    from crossroads.routers.registry import make

    out = {}
    outcomes = Outcomes(models, quality[:n_prefix], cost[:n_prefix])
    for name in routers:
        router = make(name).fit(x[:n_prefix], outcomes)
        choices = select(router.predict(x), cost, lam=lam)
        out[f"offline:{name}"] = (np.asarray(choices), router)
    return out


class _Stream:
    """The replayed stream, run once per selector."""

    def __init__(
        self,
        quality: np.ndarray,
        cost: np.ndarray,
        x: np.ndarray,
        texts: list[str] | None,
        tasks: np.ndarray,
        models: list[str],
        lam: float,
        delay: int,
        noise: float,
        missing: float,
        sync_every: int,
        seed: int,
        decay: dict[str, Any] | None,
    ) -> None:
        self.quality, self.cost, self.x = quality, cost, x
        self.texts, self.tasks, self.models = texts, tasks, models
        self.lam, self.delay, self.noise, self.missing = lam, delay, noise, missing
        self.sync_every, self.seed, self.decay = sync_every, seed, decay

    def selector(self, method: str, max_explore: float, extra: dict[str, Any], warm: Any) -> Any:
        from crossroads.config.rules import Decision
        from crossroads.online.base import OnlineSelector
        from crossroads.selection import build_selector
        from crossroads.state.memory import MemoryState

        selection: dict[str, Any] = {
            "method": method,
            "objective": {"lambda": self.lam},
            "max_explore": max_explore,
            "seed": self.seed,
            "decay": self.decay,
        }
        if method != "ema":
            selection["features"] = {
                "signals": [TASK_SIGNAL],
                "hash_slots": 16,
                "embedding_dims": 16,
            }
        if warm is not None:
            selection["warm_start"] = warm
        selection.update(extra)
        decision = Decision.model_validate(
            {"name": "simulate", "when": TASK_SIGNAL, "models": self.models, "selection": selection}
        )
        selector = build_selector(decision.selection)
        assert isinstance(selector, OnlineSelector)
        selector.bind("simulate", self.models, None)
        selector.state_backend = MemoryState()
        selector.autosync = False
        selector.prepare()
        return selector

    async def run(
        self, method: str, max_explore: float, extra: dict[str, Any], warm: Any
    ) -> tuple[np.ndarray, dict[str, Any]]:
        selector = self.selector(method, max_explore, extra, warm)
        clock = [0.0]
        selector.clock = lambda: clock[0]
        rng = np.random.default_rng([self.seed, 1])
        n = len(self.quality)
        choices = np.empty(n, dtype=np.int64)
        propensity = np.empty(n)
        waiting: deque[tuple[int, str, float]] = deque()
        select_s = 0.0
        for t in range(n):
            clock[0] = float(t)
            text = self.texts[t] if self.texts is not None else ""
            request = RoutingRequest(
                text=text,
                last_user_text=text,
                prompt_tokens=len(text) // 4,
                trace_id=str(t),
                signals={TASK_SIGNAL: SignalResult(TASK_SIGNAL, True, str(self.tasks[t]))},
                vector=self.x[t],
            )
            candidates = [
                Candidate(m, float(c)) for m, c in zip(self.models, self.cost[t], strict=True)
            ]
            t0 = time.perf_counter()
            chosen = await selector.aselect(request, candidates)
            select_s += time.perf_counter() - t0
            arm = selector.index[chosen.model]
            choices[t], propensity[t] = arm, chosen.propensity
            if rng.random() >= self.missing:
                q = self.quality[t, arm] + (rng.normal(0.0, self.noise) if self.noise else 0.0)
                waiting.append((t + self.delay, str(t), float(min(1.0, max(0.0, q)))))
            while waiting and waiting[0][0] <= t:
                _, trace_id, q = waiting.popleft()
                await selector.observe(trace_id, q)
            if (t + 1) % self.sync_every == 0:
                await selector.sync()
        await selector.aclose()
        detail = {
            "observed": selector.observed,
            "explored": selector.explored / max(1, selector.selected),
            "mean_propensity": float(propensity.mean()),
            "select_us": select_s / max(1, n) * 1e6,
        }
        return choices, detail


def curve(values: np.ndarray, points: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, cumulative sum)`` at about ``points`` evenly spaced steps."""
    total = np.cumsum(values)
    steps = np.unique(np.linspace(1, len(values), min(points, len(values))).astype(int))
    return steps, total[steps - 1]


def running_mean(values: np.ndarray, points: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, mean so far)`` at about ``points`` evenly spaced steps."""
    steps, total = curve(values, points)
    return steps, total / steps
