"""`crossroads route --explain` as a library call: every rule, why, and what was skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from crossroads.config import parse_config
from crossroads.config.signals import _SignalBase
from crossroads.explain import explain_route
from crossroads.registry import SIGNALS
from crossroads.signals.base import Signal
from crossroads.types import RoutingRequest, SignalResult, ValueSpec


class LengthScoreConfig(_SignalBase):
    kind: Literal["lengthscore"]


class LengthScoreSignal(Signal):
    """A slow signal of a plugin kind that declares its value: a score in [0, 1]."""

    kind = "lengthscore"
    is_async = True
    config_class = LengthScoreConfig
    value_spec = ValueSpec("number", 0, 1)

    async def evaluate(self, requests: list[RoutingRequest]) -> list[SignalResult]:
        return [SignalResult(self.name, True, min(1.0, len(r.text) / 100)) for r in requests]


@pytest.fixture
def plugin() -> Iterator[None]:
    SIGNALS.register("lengthscore")(LengthScoreSignal)
    yield
    SIGNALS._items.pop("lengthscore", None)


CONFIG: dict[str, Any] = {
    "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
    "models": [
        {"name": "small", "upstream": "u", "price": {"input": 0.1, "output": 0.2}},
        {"name": "big", "upstream": "u", "price": {"input": 3, "output": 15}},
    ],
    "signals": [
        {"kind": "keyword", "name": "k", "keywords": ["quick"]},
        {"kind": "lengthscore", "name": "len"},
    ],
    "decisions": [
        {"name": "quick", "priority": 10, "when": "keyword:k", "models": ["small"]},
        {"name": "long", "priority": 5, "when": "lengthscore:len > 0.5", "models": ["big"]},
    ],
    "default": {"models": ["small", "big"], "selection": "cheapest"},
}


def explained(text: str) -> dict[str, Any]:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    return asyncio.run(explain_route(parse_config(CONFIG), body, rules=True))


def test_a_slow_signal_the_cheap_ones_settled_is_listed_as_not_computed(plugin: None) -> None:
    route = explained("quick one")
    assert route["decision"] == "quick"
    assert route["not_computed"] == ["lengthscore:len"]
    assert [(r["decision"], r["status"], r["why"]) for r in route["rules"]] == [
        ("quick", "matched", "keyword:k=T"),
        ("long", "not tried", "(lengthscore:len > 0.5)=?"),
        ("default", "not tried", "default"),
    ]


def test_a_slow_comparison_shows_the_value_it_read(plugin: None) -> None:
    route = explained("x" * 80)
    assert route["decision"] == "long" and route["model"] == "big"
    assert route["not_computed"] == []
    assert route["rules"][1] == {
        "decision": "long",
        "priority": 5,
        "status": "matched",
        "why": "(lengthscore:len=0.8 > 0.5)=T",
    }
    assert route["signals"]["lengthscore:len"]["elapsed_ms"] > 0
    short = explained("hi")
    assert [r["status"] for r in short["rules"]] == ["no", "no", "matched"]
    assert short["model"] == "small" and {c["model"] for c in short["candidates"]} == {
        "small",
        "big",
    }


def test_a_plugins_declared_range_is_checked_at_load(plugin: None) -> None:
    from crossroads.exceptions import ConfigError

    bad = {**CONFIG, "decisions": [{"name": "d", "when": "lengthscore:len > 2", "models": ["big"]}]}
    with pytest.raises(ConfigError, match=r"outside the range of lengthscore:len, \[0, 1\]"):
        parse_config(bad)


def test_without_rules_the_route_is_what_a_trace_records(plugin: None) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "quick"}]}
    route = asyncio.run(explain_route(parse_config(CONFIG), body))
    assert "rules" not in route and route["rule_path"] == ["quick: keyword:k=T"]
