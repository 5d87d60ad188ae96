"""Aggregates of a window of traces: rate, latency, decisions and models over time, spend,
and savings against two counterfactuals.

A trace's counterfactual costs price its recorded usage at today's config prices: at the
most expensive candidate of its decision (what routing everything to the dearest option it
had would have cost) and at ``ui.reference_model``. Savings are those minus the recorded cost.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from crossroads.config import ModelConfig
from crossroads.cost import estimate_cost

TOP = 8  # decisions and models drawn over time one by one; the rest as "other"
OTHER = "(other)"


def counterfactual(
    row: dict[str, Any], models: dict[str, ModelConfig], reference: str | None
) -> dict[str, Any] | None:
    """The costs of a summary row's usage at its dearest candidate and at ``reference``, or
    None for a trace without usage (it failed, or was not settled). Candidates no longer in
    the config are skipped; with none left, the model that answered stands in."""
    prompt, completion = row["prompt_tokens"], row["completion_tokens"]
    if prompt is None or completion is None:
        return None
    priced = [
        (estimate_cost(models[name], prompt, completion), name)
        for name in (row["candidates"] or [row["model"]])
        if name in models
    ]
    if not priced and row["model"] in models:
        priced = [(estimate_cost(models[row["model"]], prompt, completion), row["model"])]
    actual = row["cost"] or 0.0
    dearest_cost, dearest = max(priced) if priced else (actual, row["model"])
    return {
        "actual": actual,
        "max_candidate": dearest_cost,
        "max_candidate_model": dearest,
        "reference": estimate_cost(models[reference], prompt, completion)
        if reference in models
        else None,
        "reference_model": reference,
    }


def percentile(ordered: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0..1) of sorted values; None for none."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def window_stats(
    rows: list[dict[str, Any]],
    models: dict[str, ModelConfig],
    reference: str | None,
    since: float,
    until: float,
    buckets: int,
    truncated: bool,
) -> dict[str, Any]:
    """Everything the dashboard's overview draws, from the summary rows of ``[since, until)``.
    ``truncated``: the rows are only the newest of the window (the rest was not read)."""
    if truncated and rows:
        since = min(r["created_at"] for r in rows)
    span = max(until - since, 1e-9)
    width = span / buckets
    latencies: list[float] = []
    ttfts: list[float] = []
    per_bucket: list[list[float]] = [[] for _ in range(buckets)]
    series: dict[str, list[Any]] = {
        "requests": [0] * buckets,
        "errors": [0] * buckets,
        **{name: [0.0] * buckets for name in ("cost", "max_candidate_cost", "reference_cost")},
    }
    decisions: Counter[str] = Counter()
    model_counts: Counter[str] = Counter()
    by_decision: dict[str, list[int]] = {}
    by_model: dict[str, list[int]] = {}
    spend = {"actual": 0.0, "max_candidate": 0.0, "reference": 0.0}
    priced = errors = 0
    for row in rows:
        b = min(buckets - 1, max(0, int((row["created_at"] - since) / width)))
        series["requests"][b] += 1
        if row["status"] >= 400:
            errors += 1
            series["errors"][b] += 1
        if row["latency_ms"] is not None:
            latencies.append(row["latency_ms"])
            per_bucket[b].append(row["latency_ms"])
        if row["ttft_ms"] is not None:
            ttfts.append(row["ttft_ms"])
        decision = row["decision"] or "(none)"
        model = row["model"] or "(none)"
        decisions[decision] += 1
        model_counts[model] += 1
        by_decision.setdefault(decision, [0] * buckets)[b] += 1
        by_model.setdefault(model, [0] * buckets)[b] += 1
        costs = counterfactual(row, models, reference)
        if costs is None:
            continue
        priced += 1
        spend["actual"] += costs["actual"]
        spend["max_candidate"] += costs["max_candidate"]
        series["cost"][b] += costs["actual"]
        series["max_candidate_cost"][b] += costs["max_candidate"]
        if costs["reference"] is not None:
            spend["reference"] += costs["reference"]
            series["reference_cost"][b] += costs["reference"]
    latencies.sort()
    ttfts.sort()
    has_reference = reference in models
    return {
        "object": "crossroads.stats",
        "since": since,
        "until": until,
        "bucket_s": width,
        "truncated": truncated,
        "requests": len(rows),
        "errors": errors,
        "rate_per_s": len(rows) / span,
        "latency_ms": {f"p{q}": percentile(latencies, q / 100) for q in (50, 95, 99)},
        "ttft_ms": {f"p{q}": percentile(ttfts, q / 100) for q in (50, 95)},
        "decisions": dict(decisions.most_common()),
        "models": dict(model_counts.most_common()),
        "spend": {
            "priced_requests": priced,
            "actual": spend["actual"],
            "max_candidate": spend["max_candidate"],
            "savings_vs_max_candidate": spend["max_candidate"] - spend["actual"],
            "reference_model": reference if has_reference else None,
            "reference": spend["reference"] if has_reference else None,
            "savings_vs_reference": spend["reference"] - spend["actual"] if has_reference else None,
        },
        "series": {
            "t": [since + i * width for i in range(buckets)],
            **series,
            "rate_per_s": [n / width for n in series["requests"]],
            "p50_ms": [percentile(sorted(v), 0.5) for v in per_bucket],
            "p95_ms": [percentile(sorted(v), 0.95) for v in per_bucket],
            "decisions": _top(by_decision, decisions, buckets),
            "models": _top(by_model, model_counts, buckets),
        },
    }


def _top(counts: dict[str, list[int]], totals: Counter[str], buckets: int) -> dict[str, list[int]]:
    """The ``TOP`` busiest names' counts per bucket; the others summed as ``OTHER``."""
    names = [name for name, _ in totals.most_common()]
    out = {name: counts[name] for name in names[:TOP]}
    rest = names[TOP:]
    if rest:
        out[OTHER] = [sum(counts[n][i] for n in rest) for i in range(buckets)]
    return out
