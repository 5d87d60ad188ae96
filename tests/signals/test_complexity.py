from __future__ import annotations

import pytest

from crossroads.config import parse_config
from crossroads.exceptions import ConfigError
from crossroads.signals.complexity import band_of
from tests.signals.conftest import build, request


def test_bands_split_the_probability() -> None:
    assert [band_of(p, 0.35, 0.6) for p in (0.0, 0.349, 0.35, 0.599, 0.6, 1.0)] == [
        "easy",
        "easy",
        "medium",
        "medium",
        "hard",
        "hard",
    ]


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ConfigError, match="hard_at"):
        parse_config(
            {
                "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
                "models": [{"name": "a", "upstream": "u"}],
                "signals": [{"kind": "complexity", "name": "c", "medium_at": 0.7, "hard_at": 0.5}],
            }
        )


@pytest.mark.usefixtures("minilm")
async def test_a_competition_problem_is_harder_than_a_greeting() -> None:
    signal = build("complexity", bands=["hard", "medium"])
    hard, easy = await signal.evaluate(
        [
            request(
                "Find the number of ordered pairs (m, n) of positive integers such that "
                "m^2 n = 20^20, and prove that your count is complete."
            ),
            request("What is the capital of France?"),
        ]
    )
    assert 0.0 <= easy.value < hard.value <= 1.0
    assert hard.detail == band_of(hard.value, 0.35, 0.6)
    assert hard.matched == (hard.detail in ("hard", "medium"))
