"""Routing datasets in the shared schema (``routing.parquet`` + ``models.json``) and splits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossroads.eval import prices
from crossroads.routers.base import Outcomes
from crossroads.types import EmbeddingWindow


@dataclass
class RoutingDataset:
    """One dataset: prompts (``None`` without text), task labels, splits, outcomes, cost note."""

    name: str
    prompt_ids: np.ndarray
    prompts: list[str] | None
    tasks: np.ndarray
    splits: np.ndarray
    outcomes: Outcomes
    cost_unit: str
    cost_note: str
    model_info: dict[str, Any] = field(default_factory=dict)
    excluded_models: list[str] = field(default_factory=list)

    @property
    def has_text(self) -> bool:
        """Whether prompts carry text (else only prompt-free / task-level routing applies)."""
        return self.prompts is not None

    def __len__(self) -> int:
        return len(self.prompt_ids)


def load_dataset(path: str | Path, *, include_degenerate: bool = False) -> RoutingDataset:
    """Load ``<path>/routing.parquet`` and ``models.json``; price costless data (see prices).

    Models flagged ``variant_or_degenerate`` in models.json (AlpacaEval's NullModel, a gamed
    GPT-4, concise/verbose prompt variants) are left out unless ``include_degenerate``: they
    are judge-gaming probes or prompt variants, not models one would deploy.
    """
    import pandas as pd

    path = Path(path)
    if not (path / "routing.parquet").is_file():
        raise FileNotFoundError(
            f"{path} has no routing.parquet: point --data at a dataset folder such as "
            "../shared/data/routellm-evals"
        )
    df = pd.read_parquet(path / "routing.parquet")
    info: dict[str, Any] = json.loads((path / "models.json").read_text())
    excluded = [m for m in info if info[m].get("variant_or_degenerate") and not include_degenerate]
    models = [m for m in info if m not in excluded]
    quality = df[[f"score__{m}" for m in models]].to_numpy(dtype=np.float64)
    cost = df[[f"cost__{m}" for m in models]].to_numpy(dtype=np.float64)
    texts = df["prompt"].fillna("").astype(str).tolist()
    has_text = sum(bool(t.strip()) for t in texts) >= 0.9 * len(texts)
    units = {str(info[m].get("cost_unit")) for m in models}
    unit = units.pop() if len(units) == 1 else "mixed"
    cost, unit, note = _price(cost, unit, models, info, df, texts if has_text else None)
    # Keep selection defined where a cost is missing: use that model's mean cost.
    cost = np.where(np.isnan(cost), np.nanmean(cost, axis=0), cost)
    return RoutingDataset(
        name=path.name,
        prompt_ids=df["prompt_id"].astype(str).to_numpy(),
        prompts=texts if has_text else None,
        tasks=df["task"].fillna("").astype(str).to_numpy(),
        splits=df["split"].fillna("").astype(str).to_numpy(),
        outcomes=Outcomes(models, quality, cost),
        cost_unit=unit,
        cost_note=note,
        model_info=info,
        excluded_models=excluded,
    )


def _price(
    cost: np.ndarray,
    unit: str,
    models: list[str],
    info: dict[str, Any],
    df: Any,
    texts: list[str] | None,
) -> tuple[np.ndarray, str, str]:
    if unit in {"usd", "usd_est", "cny"}:
        return cost, unit, f"recorded by the source ({unit})"
    if unit == "tokens_est":
        per_tok = np.array([prices.price_by_name(m) for m in models]) / 1e6
        prompt_tokens = df["prompt_tokens_est"].to_numpy(dtype=np.float64)[:, None]
        note = (
            "priced: (prompt_tokens_est + output tokens_est) x a declared blended price per "
            "model (crossroads/eval/prices.py: API list prices by name, open models by size)"
        )
        return (prompt_tokens + cost) * per_tok, "usd_priced", note
    if all(info[m].get("price_in_per_mtok") is not None for m in models):
        price = np.array([float(info[m]["price_in_per_mtok"]) for m in models])
        cost = np.tile(price * prices.ASSUMED_REQUEST_TOKENS / 1e6, (len(df), 1))
        note = (
            f"priced: models.json price per 1M tokens x {prices.ASSUMED_REQUEST_TOKENS} "
            "tokens per request (no prompt text, so every request is assumed the same size)"
        )
        return cost, "usd_priced", note
    if texts is not None and all(info[m].get("params_b") for m in models):
        price = np.array([float(info[m]["params_b"]) for m in models])
        price = price * prices.PRICE_PER_BILLION_PARAMS
        tokens = np.array([len(t) / 4 for t in texts]) + prices.ASSUMED_OUTPUT_TOKENS
        note = (
            f"priced: ${prices.PRICE_PER_BILLION_PARAMS} per 1M tokens per billion parameters "
            f"(params_b in models.json) x (prompt chars/4 + {prices.ASSUMED_OUTPUT_TOKENS} "
            "assumed output tokens)"
        )
        return tokens[:, None] * price / 1e6, "usd_priced", note
    per_tok = np.array([prices.price_by_name(m) for m in models]) / 1e6
    note = f"priced by model name x {prices.ASSUMED_REQUEST_TOKENS} tokens per request"
    return np.tile(per_tok * prices.ASSUMED_REQUEST_TOKENS, (len(df), 1)), "usd_priced", note


def split_indices(
    ds: RoutingDataset, *, seed: int = 0, test_fraction: float = 0.3, val_fraction: float = 0.15
) -> dict[str, np.ndarray]:
    """Row indices of ``train``/``val``/``test``.

    A dataset with its own ``train``/``test`` split keeps its test rows as test and carves a
    seeded validation part out of its train rows; otherwise rows are split at random
    (seeded): ``test_fraction`` test, ``val_fraction`` validation, the rest train.
    """
    rng = np.random.default_rng(seed)
    labels = set(np.unique(ds.splits).tolist())
    if {"train", "test"} <= labels:
        test = np.flatnonzero(ds.splits == "test")
        pool = rng.permutation(np.flatnonzero(ds.splits != "test"))
        n_val = int(round(len(pool) * val_fraction / (1 - test_fraction)))
        val, train = pool[:n_val], pool[n_val:]
    else:
        order = rng.permutation(len(ds))
        n_test = int(round(len(ds) * test_fraction))
        n_val = int(round(len(ds) * val_fraction))
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def features_for(
    ds: RoutingDataset, *, progress: bool = False, window: EmbeddingWindow = "head_tail"
) -> tuple[np.ndarray, str]:
    """Prompt features and what they are: cached MiniLM embeddings (reading ``window`` of
    prompts longer than 256 tokens), or task one-hot vectors for datasets without prompt
    text."""
    if ds.has_text:
        from crossroads.embeddings import Embedder, EmbeddingCache

        assert ds.prompts is not None
        cache = EmbeddingCache(ds.name, embedder=Embedder(window=window))
        return cache.encode(ds.prompts, progress=progress), "minilm-embedding"
    names, inverse = np.unique(ds.tasks, return_inverse=True)
    return np.eye(len(names), dtype=np.float32)[inverse], "task-one-hot (no prompt text)"
