from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from crossroads.config import parse_config
from crossroads.exceptions import ModelNotFoundError, NoCandidateError
from crossroads.pipeline import Pipeline
from crossroads.prompts import routing_request
from crossroads.signals.base import SIGNALS, Signal
from crossroads.types import RoutingRequest, SignalResult

MODELS = [
    {
        "name": "small",
        "upstream": "u",
        "price": {"input": 0.1, "output": 0.2},
        "context_window": 1000,
        "capabilities": ["json"],
    },
    {
        "name": "big",
        "upstream": "u",
        "price": {"input": 3.0, "output": 15.0},
        "context_window": 100000,
        "capabilities": ["tools", "json", "vision"],
    },
]


def pipeline(**extra: Any) -> Pipeline:
    cfg = parse_config(
        {"upstreams": [{"name": "u", "base_url": "http://x/v1"}], "models": MODELS, **extra}
    )
    return Pipeline(cfg).prepare()


def chat(text: str, **body: Any) -> RoutingRequest:
    return routing_request(
        {"model": "auto", "messages": [{"role": "user", "content": text}], **body}
    )


def route(p: Pipeline, request: RoutingRequest, model: str = "auto"):
    return asyncio.run(p.route(request, model))


def test_cheapest_picks_lowest_estimated_cost_and_reports_every_candidate() -> None:
    p = pipeline(default={"models": ["big", "small"], "selection": "cheapest"})
    r = route(p, chat("hello"))
    assert r.model == "small" and r.selection == "cheapest"
    costs = {c.model: c.estimated_cost for c in r.candidates}
    assert costs["small"] < costs["big"]
    assert r.estimated_cost == costs["small"]


def test_candidates_that_cannot_fit_the_context_are_skipped_with_a_reason() -> None:
    p = pipeline(default={"models": ["small", "big"], "selection": "first"})
    r = route(p, chat("word " * 2000))
    assert r.model == "big"
    small = next(c for c in r.candidates if c.model == "small")
    assert not small.eligible and "context window is 1000" in small.reason


def test_capabilities_the_request_uses_are_required() -> None:
    p = pipeline(default={"models": ["small", "big"]})
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert route(p, chat("hi", tools=tools)).model == "big"
    assert route(p, chat("hi", response_format={"type": "json_object"})).model == "small"


def test_no_eligible_candidate_is_a_clear_client_error() -> None:
    p = pipeline(default={"models": ["small"]})
    with pytest.raises(NoCandidateError, match=r"small: lacks tools"):
        route(p, chat("hi", tools=[{"type": "function", "function": {"name": "f"}}]))


def test_concrete_model_passes_through_with_its_cost() -> None:
    p = pipeline()
    r = route(p, chat("hello"), model="big")
    assert (r.model, r.decision, r.selection) == ("big", "explicit", "explicit")
    assert r.estimated_cost > 0


def test_unknown_model_lists_what_exists() -> None:
    with pytest.raises(ModelNotFoundError, match="auto, small, big"):
        route(pipeline(), chat("hi"), model="gpt-9")


def test_weighted_selection_follows_weights() -> None:
    p = pipeline(
        default={
            "models": ["small", "big"],
            "selection": {"method": "weighted", "weights": {"small": 3, "big": 1}, "seed": 7},
        }
    )
    picks = [route(p, chat("hi")).model for _ in range(400)]
    share = picks.count("small") / len(picks)
    assert 0.65 < share < 0.85


def test_the_route_logs_the_chance_its_choice_had() -> None:
    weighted = pipeline(
        default={
            "models": ["small", "big"],
            "selection": {"method": "weighted", "weights": {"small": 3, "big": 1}, "seed": 1},
        }
    )
    chances = {r.model: r.propensity for r in (route(weighted, chat("hi")) for _ in range(50))}
    assert chances == {"small": 0.75, "big": 0.25}
    assert route(pipeline(default={"models": ["big", "small"]}), chat("hi")).propensity == 1.0
    assert route(pipeline(), chat("hi"), model="big").propensity == 1.0


def test_signals_no_rule_reads_are_never_built() -> None:
    p = pipeline(
        signals=[
            {"kind": "keyword", "name": "used", "keywords": ["a"]},
            {"kind": "regex", "name": "unused", "patterns": ["b"]},
        ],
        decisions=[{"name": "d", "when": "keyword:used", "models": ["big"]}],
    )
    assert set(p.signals_) == {"keyword:used"}
    r = route(p, chat("a b"))
    assert set(r.signals) == {"keyword:used"} and r.decision == "d"


class _SlowSignal(Signal):
    kind = "slow_test"
    is_async = True

    async def evaluate(self, requests: list[RoutingRequest]) -> list[SignalResult]:
        await asyncio.sleep(5)
        return [SignalResult(self.name, True) for _ in requests]


def test_async_signal_over_its_budget_counts_as_false() -> None:
    from types import SimpleNamespace

    from crossroads.decisions import CompiledDecision, Node

    p = pipeline(default={"models": ["small"]})
    slow = _SlowSignal(SimpleNamespace(name="s", timeout_ms=20, scope="all"))
    p._entry_signals["auto"] = ([], [slow])
    entry = p.entrypoints_["auto"]
    reads_slow = CompiledDecision(
        "slow",
        1,
        ("small",),
        entry.default.selection,
        Node("signal", lambda s: False, signal="slow_test:s", text="slow_test:s"),
        lambda s: False,
        frozenset(),
    )
    p.entrypoints_["auto"] = dataclasses.replace(entry, decisions=(reads_slow,))
    results = asyncio.run(p.compute_signals(chat("x"), "auto"))
    assert results["slow_test:s"].matched is False
    assert "timed out after 20 ms" in results["slow_test:s"].error
    assert results["slow_test:s"].elapsed_ms < 1000


def test_a_failing_signal_is_false_and_recorded() -> None:
    p = pipeline(
        signals=[{"kind": "keyword", "name": "k", "keywords": ["x"]}],
        decisions=[{"name": "d", "when": "keyword:k", "models": ["big"]}],
    )
    broken = p.signals_["keyword:k"]
    broken.compute = lambda request: 1 / 0  # type: ignore[method-assign]
    r = route(p, chat("x"))
    assert r.decision == "default" and "ZeroDivisionError" in r.signals["keyword:k"].error


def test_builtin_kinds_are_in_the_registry() -> None:
    from crossroads.signals import signal_kinds

    assert {"keyword", "regex", "tokens", "metadata", "has_code"} <= set(signal_kinds())
    assert SIGNALS.get("keyword").kind == "keyword"


def test_models_served_only_by_anthropic_take_no_legacy_completions() -> None:
    cfg = parse_config(
        {
            "upstreams": [
                {"name": "u", "base_url": "http://x/v1"},
                {"name": "claude", "kind": "anthropic", "api_key_env": "K"},
            ],
            "models": [{"name": "c", "upstream": "claude"}, {"name": "o", "upstream": "u"}],
            "default": {"models": ["c", "o"]},
        }
    )
    p = Pipeline(cfg).prepare()
    r = route(p, routing_request({"model": "auto", "prompt": "Once"}, "completions"))
    assert r.model == "o"
    assert next(c for c in r.candidates if c.model == "c").reason == "does not serve /completions"


class _Probe(Signal):
    """An async stand-in for an expensive signal (say, an embedding): counts its calls."""

    kind = "keyword"
    is_async = True
    calls = 0

    async def evaluate(self, requests: list[RoutingRequest]) -> list[SignalResult]:
        type(self).calls += 1
        return [SignalResult(self.name, "deep" in r.text, r.text.count("deep")) for r in requests]


def probed(*decisions: dict[str, Any]) -> Pipeline:
    """Rules over a cheap signal ``keyword:k`` (matches "x") and an expensive async one
    ``keyword:a`` (matches "deep")."""
    from types import SimpleNamespace

    p = pipeline(
        signals=[
            {"kind": "keyword", "name": "k", "keywords": ["x"]},
            {"kind": "keyword", "name": "a", "keywords": ["unused"]},
        ],
        decisions=list(decisions),
        default={"models": ["small"]},
    )
    probe = _Probe(SimpleNamespace(name="a", timeout_ms=1000, scope="all"))
    p._entry_signals["auto"] = ([p.signals_["keyword:k"]], [probe])
    _Probe.calls = 0
    return p


@pytest.mark.parametrize(
    ("text", "decision", "computed"),
    [
        ("x marks it", "either", False),  # the cheap signal settles the first decision
        ("deep thought", "either", True),
        ("plain", "default", True),  # unknown until the expensive one is known
    ],
)
def test_expensive_signals_run_only_when_they_can_change_the_decision(
    text: str, decision: str, computed: bool
) -> None:
    p = probed({"name": "either", "when": {"any": ["keyword:k", "keyword:a"]}, "models": ["big"]})
    r = route(p, chat(text))
    assert r.decision == decision and (_Probe.calls == 1) is computed
    assert ("keyword:a" in r.signals) is computed
    if not computed:
        assert r.rule_path == ["either: any(keyword:k=T, keyword:a=?)=T"]


def test_a_higher_priority_unknown_rule_forces_the_expensive_signal() -> None:
    p = probed(
        {"name": "deep", "priority": 10, "when": "keyword:a", "models": ["big"]},
        {"name": "cheap", "priority": 5, "when": "keyword:k", "models": ["small"]},
    )
    assert route(p, chat("x deep")).decision == "deep" and _Probe.calls == 1
    assert route(p, chat("x")).decision == "cheap" and _Probe.calls == 2


def test_rules_settled_false_skip_the_expensive_signal() -> None:
    p = probed({"name": "both", "when": {"all": ["keyword:k", "keyword:a"]}, "models": ["big"]})
    assert route(p, chat("plain")).decision == "default" and _Probe.calls == 0
    assert route(p, chat("x only")).decision == "default" and _Probe.calls == 1
    assert route(p, chat("x deep")).decision == "both" and _Probe.calls == 2


def test_a_failing_signals_error_is_masked_and_bounded() -> None:
    p = pipeline(
        signals=[{"kind": "keyword", "name": "k", "keywords": ["x"]}],
        decisions=[{"name": "d", "when": "keyword:k", "models": ["small"]}],
        default={"models": ["big"]},
    )

    def broken(request: RoutingRequest) -> SignalResult:
        raise ValueError(f"cannot read {request.text}")

    p.signals_["keyword:k"].compute = broken  # type: ignore[method-assign]
    r = route(p, chat("mail alice@example.com " + "y" * 5000))
    error = r.signals["keyword:k"].error or ""
    assert r.model == "big" and error.startswith("ValueError: cannot read mail [redacted] yyy")
    assert "alice" not in error and len(error) < 300


@pytest.mark.parametrize(
    ("text", "decision", "computed"),
    [
        ("x marks it", "either", False),  # the cheap signal settles it: no comparison needed
        ("deep deep", "either", True),
        ("deep once", "default", True),
    ],
)
def test_a_comparison_on_an_expensive_signal_is_computed_only_when_needed(
    text: str, decision: str, computed: bool
) -> None:
    p = probed(
        {"name": "either", "when": {"any": ["keyword:k", "keyword:a >= 2"]}, "models": ["big"]}
    )
    r = route(p, chat(text))
    assert r.decision == decision and (_Probe.calls == 1) is computed
    if not computed:
        assert r.rule_path == ["either: any(keyword:k=T, (keyword:a >= 2)=?)=T"]
    elif decision == "either":
        assert r.rule_path == ["either: any(keyword:k=F, (keyword:a=2 >= 2)=T)=T"]


def test_comparisons_route_on_signal_values() -> None:
    p = pipeline(
        signals=[
            {"kind": "tokens", "name": "prompt"},
            {"kind": "metadata", "name": "who", "source": "user", "values": ["-"]},
        ],
        decisions=[
            {"name": "long", "when": "tokens:prompt >= 50", "priority": 2, "models": ["big"]},
            {
                "name": "team",
                "when": "metadata:who in [ann, bob]",
                "priority": 1,
                "models": ["big"],
            },
        ],
        default={"models": ["small"]},
    )
    assert route(p, chat("word " * 100)).decision == "long"
    assert route(p, chat("hi", user="bob")).decision == "team"
    assert route(p, chat("hi", user="eve")).decision == "default"
    assert route(p, chat("hi")).decision == "default"  # no user: no value, not "not in"
