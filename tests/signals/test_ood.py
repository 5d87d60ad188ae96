from __future__ import annotations

import pytest

from crossroads.exceptions import ConfigError
from tests.signals.conftest import build, request

pytestmark = pytest.mark.usefixtures("minilm")


async def test_noise_is_out_of_distribution_and_real_requests_are_not() -> None:
    signal = build("ood")
    noise, code, question = await signal.evaluate(
        [
            request("kjhsdf 8734 ;;; qpwoeiru zzkx"),
            request("How do I sort a dictionary by value in Python?"),
            request("Who painted the Mona Lisa?"),
        ]
    )
    assert noise.matched and noise.value is True
    assert not code.matched and not question.matched
    assert "similarity=" in code.detail and "domain=code" in code.detail


async def test_a_policy_scoped_to_its_decisions_flags_what_they_do_not_cover() -> None:
    signal = build(
        "ood",
        labels=["code"],
        exemplars=["write a python function", "fix this bug in my javascript", "SQL query help"],
    )
    code, history = await signal.evaluate(
        [
            request("My Rust program panics with index out of bounds"),
            request("Why did the Roman Empire fall?"),
        ]
    )
    assert not code.matched
    assert history.matched


def test_an_unknown_label_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no label 'sports'"):
        build("ood", labels=["sports"])
