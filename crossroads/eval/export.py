"""Traces with feedback as a routing dataset (``crossroads dataset export``): the gateway's own
traffic in the schema of ``../shared/data`` (``routing.parquet`` + ``models.json`` +
``meta.json``), so ``crossroads fit`` / ``eval`` read it like any other dataset.

One row per answered trace that has feedback. ``score__<model>`` is known only for the
model that answered (the reward; the mean over sources when several graded it) and missing
(NaN) for the others: nobody saw their answers. ``cost__<model>`` is the answer's actual
cost (USD) for the model that answered and, for the decision's other candidates, the cost
estimated at routing time. ``task`` is the decision; ``prompt`` the last user message when
the gateway kept it (``store.prompts: true``), else empty, and routers then learn per
decision only. Extra columns: ``served_model``, ``propensity``, ``decision``,
``created_at``, ``feedback_sources``, ``shadow_model``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crossroads.store.base import TraceStore
from crossroads.types import Feedback


def reward_of(feedback: Sequence[Feedback], source: str | None = None) -> float | None:
    """The reward of a trace: the mean over its feedback (of ``source`` only, if given)."""
    rewards = [f.reward for f in feedback if source is None or f.source == source]
    return sum(rewards) / len(rewards) if rewards else None


def export_rows(
    labeled: list[tuple[dict[str, Any], list[Feedback]]], source: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Dataset rows (model names unprefixed: ``scores``/``costs`` dicts) of labeled traces,
    and how many traces were left out, by reason."""
    rows: list[dict[str, Any]] = []
    skipped = {"failed": 0, "no_reward": 0, "no_route": 0}
    for trace, feedback in labeled:
        route = trace.get("route")
        served = trace.get("model")
        if route is None or served is None:
            skipped["no_route"] += 1
            continue
        if (trace.get("status") or 200) >= 400:
            skipped["failed"] += 1
            continue
        reward = reward_of(feedback, source)
        if reward is None:
            skipped["no_reward"] += 1
            continue
        costs = {c["model"]: c.get("estimated_cost") for c in route.get("candidates") or []}
        cost = trace.get("cost")
        costs[served] = cost if cost is not None else costs.get(served)
        shadow = route.get("shadow") or {}
        rows.append(
            {
                "prompt_id": trace["trace_id"],
                "task": route.get("decision") or "",
                "prompt": trace.get("prompt") or "",
                "scores": {served: reward},
                "costs": costs,
                "served_model": served,
                "propensity": route.get("propensity"),
                "decision": route.get("decision"),
                "created_at": trace.get("created_at"),
                "feedback_sources": ",".join(
                    sorted({f.source for f in feedback if source is None or f.source == source})
                ),
                "shadow_model": shadow.get("model") or None,
            }
        )
    return rows, skipped


def export_dataset(
    store: TraceStore,
    out: str | Path,
    *,
    since: float | None = None,
    until: float | None = None,
    source: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Write the traces of ``store`` that have feedback to ``out`` as a routing dataset;
    what was written (``meta.json``'s content). Raises ``ValueError`` when no trace has a
    usable reward."""
    import pandas as pd

    out = Path(out)
    rows, skipped = export_rows(store.labeled(since, until), source)
    if not rows:
        raise ValueError(
            f"no trace with feedback to export (left out: {skipped}); send feedback to "
            "POST /v1/crossroads/feedback first"
        )
    models = sorted({m for r in rows for m in (*r["costs"], *r["scores"])})
    name = name or out.name
    table: dict[str, list[Any]] = {
        "prompt_id": [r["prompt_id"] for r in rows],
        "dataset": [name] * len(rows),
        "task": [r["task"] for r in rows],
        "split": [""] * len(rows),  # loaders split at random (seeded)
        "prompt": [r["prompt"] for r in rows],
    }
    for model in models:
        table[f"score__{model}"] = [r["scores"].get(model, math.nan) for r in rows]
        table[f"cost__{model}"] = [_number(r["costs"].get(model)) for r in rows]
    for extra in (
        "served_model",
        "propensity",
        "decision",
        "created_at",
        "feedback_sources",
        "shadow_model",
    ):
        table[extra] = [r[extra] for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(table).to_parquet(out / "routing.parquet", compression="zstd", index=False)
    served = {m: sum(r["served_model"] == m for r in rows) for m in models}
    info = {
        m: {
            "name": m,
            "cost_unit": "usd",
            "served_rows": served[m],
            "note": "score known where this model answered; cost actual there, estimated "
            "at routing time elsewhere",
        }
        for m in models
    }
    (out / "models.json").write_text(json.dumps(info, indent=2) + "\n")
    meta = {
        "source": "crossroads traces with feedback",
        "exported_at": time.time(),
        "since": since,
        "until": until,
        "feedback_source": source,
        "rows": len(rows),
        "models": len(models),
        "with_prompt_text": sum(bool(r["prompt"]) for r in rows),
        "skipped": skipped,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "README.md").write_text(
        f"# {name}\n\nExported by `crossroads dataset export` from the gateway's traces with "
        f"feedback: {len(rows)} rows, {len(models)} models. Scores are the rewards of the model "
        "that answered (other models: NaN); costs are actual for it and estimated at routing "
        "time for the other candidates (USD). See docs/feedback.md.\n"
    )
    return meta


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan
