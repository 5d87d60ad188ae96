"""Synthetic routing data with a known structure, for tests and examples.

Prompts fall in ``n_clusters`` topics; each model is good at some topics and bad at others,
and pricier models are better on average, so a router that reads the prompt can beat every
single model at equal cost.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from crossroads.routers.base import Outcomes


def make_routing_data(
    n: int = 600, n_models: int = 3, dim: int = 8, n_clusters: int = 4, seed: int = 0
) -> tuple[np.ndarray, Outcomes, np.ndarray]:
    """``(features, outcomes, topic)``: unit-norm features, 0/1 qualities, per-request costs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 3
    topic = rng.integers(0, n_clusters, n)
    x = centres[topic] + rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    skill = rng.normal(size=(n_clusters, n_models)) * 1.5 + np.linspace(-0.5, 1.0, n_models)
    p = 1 / (1 + np.exp(-skill[topic]))
    quality = (rng.random((n, n_models)) < p).astype(np.float64)
    price = np.geomspace(1.0, 20.0, n_models)
    cost = price * rng.uniform(0.8, 1.2, (n, n_models)) * 1e-4
    models = [f"model-{i}" for i in range(n_models)]
    return x.astype(np.float32), Outcomes(models, quality, cost), topic


def write_dataset(path: str | Path, n: int = 300, n_models: int = 3, seed: int = 0) -> Path:
    """Write a synthetic dataset in the shared schema; prompt text names the topic."""
    import pandas as pd

    _, outcomes, topic = make_routing_data(n=n, n_models=n_models, seed=seed)
    words = ["math", "poetry", "code", "history", "biology", "law"]
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cols: dict[str, object] = {
        "prompt_id": [f"p{i}" for i in range(n)],
        "dataset": "synthetic",
        "task": [words[t % len(words)] for t in topic],
        "split": "eval",
        "prompt": [f"question {i} about {words[t % len(words)]}" for i, t in enumerate(topic)],
    }
    for j, m in enumerate(outcomes.models):
        cols[f"score__{m}"] = outcomes.quality[:, j]
        assert outcomes.cost is not None
        cols[f"cost__{m}"] = outcomes.cost[:, j]
    pd.DataFrame(cols).to_parquet(path / "routing.parquet")
    info = {m: {"name": m, "cost_unit": "usd"} for m in outcomes.models}
    (path / "models.json").write_text(json.dumps(info))
    return path
