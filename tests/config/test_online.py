"""Online selection configs: mistakes are reported with their path and what to do."""

from __future__ import annotations

from typing import Any

import pytest

from crossroads.config import LinUCBSelection, parse_config
from crossroads.exceptions import ConfigError


def config(selection: Any, signals: list[dict[str, Any]] | None = None) -> Any:
    return parse_config(
        {
            "upstreams": [{"name": "u", "kind": "mock"}],
            "models": [{"name": "a", "upstream": "u"}, {"name": "b", "upstream": "u"}],
            "signals": signals or [],
            "default": {"models": ["a", "b"], "selection": selection},
        }
    )


def test_a_linucb_decision_validates() -> None:
    cfg = config({"method": "linucb", "alpha": 0.5, "objective": {"lambda": 2.0}})
    assert isinstance(cfg.default.selection, LinUCBSelection)
    assert cfg.default.selection.max_explore == 0.1


def test_the_shorthand_names_the_method() -> None:
    assert config("thompson").default.selection.method == "thompson"


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            {"method": "linucb", "max_explore": 1.5},
            r"default.selection.max_explore: Input should be less than or equal to 1",
        ),
        ({"method": "ema", "priors": {"a": 2.0}}, r"priors are qualities in \[0, 1\]"),
        ({"method": "ema", "priors": {"c": 0.5}}, r"default.selection.priors: 'c' is not one of"),
        ({"method": "linucb", "objective": {"quality_target": 0.9}}, r"objective"),
        ({"method": "thompson", "features": {"signals": ["code"]}}, r"must be 'kind:name'"),
        (
            {"method": "linucb", "decay": {"buckets": 100}},
            r"selection.decay.buckets: Input should be less than or equal to 64",
        ),
        ({"method": "linucb", "alhpa": 1}, r"alhpa"),
    ],
)
def test_mistakes_are_reported_clearly(selection: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(selection)


def test_a_feature_signal_must_be_declared() -> None:
    with pytest.raises(ConfigError, match=r"unknown signal 'keyword:kode': declare it"):
        config(
            {"method": "linucb", "features": {"signals": ["keyword:kode"]}},
            [{"kind": "keyword", "name": "code", "keywords": ["python"]}],
        )
