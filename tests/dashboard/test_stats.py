"""Window aggregates and the counterfactual costs, on hand-made summary rows."""

from __future__ import annotations

from typing import Any

import pytest

from crossroads.config import ModelConfig
from crossroads.dashboard.stats import OTHER, TOP, counterfactual, percentile, window_stats

MODELS = {
    name: ModelConfig(name=name, upstream="u", price={"input": i, "output": o})
    for name, (i, o) in {"cheap": (1, 2), "dear": (10, 20), "odd": (0, 100)}.items()
}


def row(at: float, **changes: Any) -> dict[str, Any]:
    base = {
        "trace_id": f"t{at}",
        "created_at": at,
        "model": "cheap",
        "decision": "default",
        "status": 200,
        "latency_ms": 10.0,
        "ttft_ms": 5.0,
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "cost": 0.0012,
        "candidates": ["cheap", "dear"],
    }
    return base | changes


def test_the_dearest_candidate_depends_on_the_tokens() -> None:
    # "odd" charges only output: dearest for answers long against their prompt.
    short = counterfactual(row(0, candidates=["dear", "odd"]), MODELS, None)
    long = counterfactual(
        row(0, candidates=["dear", "odd"], prompt_tokens=10, completion_tokens=1000), MODELS, None
    )
    assert short is not None and long is not None
    assert (short["max_candidate_model"], short["max_candidate"]) == ("dear", 0.012)
    assert (long["max_candidate_model"], long["max_candidate"]) == ("odd", 0.1)


def test_counterfactual_edge_cases() -> None:
    assert counterfactual(row(0, prompt_tokens=None, cost=None), MODELS, "dear") is None
    gone = counterfactual(row(0, candidates=["retired"]), MODELS, "dear")
    assert gone is not None and gone["max_candidate_model"] == "cheap"  # the answering model
    assert gone["reference"] == pytest.approx(0.012)
    assert counterfactual(row(0), MODELS, None)["reference"] is None  # type: ignore[index]


def test_window_stats_counts_spend_and_series() -> None:
    rows = [
        row(0),
        row(30, decision="coding", model="dear", cost=0.012, latency_ms=30.0),
        row(70, status=502, prompt_tokens=None, completion_tokens=None, cost=None, latency_ms=90.0),
        row(99),
    ]
    s = window_stats(rows, MODELS, "dear", since=0, until=100, buckets=4, truncated=False)
    assert (s["requests"], s["errors"], s["rate_per_s"]) == (4, 1, 0.04)
    assert s["series"]["requests"] == [1, 1, 1, 1]
    assert s["series"]["errors"] == [0, 0, 1, 0]
    assert s["series"]["decisions"] == {"default": [1, 0, 1, 1], "coding": [0, 1, 0, 0]}
    assert s["latency_ms"] == {"p50": 10.0, "p95": 90.0, "p99": 90.0}
    spend = s["spend"]
    assert spend["priced_requests"] == 3
    assert spend["actual"] == pytest.approx(0.0144)
    assert spend["max_candidate"] == pytest.approx(0.036)
    assert spend["savings_vs_max_candidate"] == pytest.approx(0.0216)
    assert spend["savings_vs_reference"] == pytest.approx(0.0216)
    assert sum(s["series"]["cost"]) == pytest.approx(spend["actual"])


def test_a_truncated_window_measures_the_rate_over_what_was_read() -> None:
    rows = [row(50), row(75)]
    s = window_stats(rows, MODELS, None, since=0, until=100, buckets=5, truncated=True)
    assert (s["since"], s["truncated"], s["rate_per_s"]) == (50, True, 2 / 50)
    assert s["spend"]["reference"] is None


def test_only_the_busiest_are_drawn_one_by_one() -> None:
    rows = [row(i, model=f"m{i % (TOP + 3)}") for i in range(TOP + 3)]
    s = window_stats(rows, MODELS, None, since=0, until=100, buckets=2, truncated=False)
    assert len(s["series"]["models"]) == TOP + 1 and sum(s["series"]["models"][OTHER]) == 3


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
