from __future__ import annotations

import pytest

from crossroads.exceptions import ConfigError
from tests.signals.conftest import build, request

pytestmark = pytest.mark.usefixtures("minilm")


async def test_the_builtin_head_labels_clear_prompts() -> None:
    signal = build("domain")
    prompts = {
        "code": "Write a Python function that removes duplicates from a list while keeping order",
        "math": "Solve for x: 3x + 7 = 22",
        "translation": "Translate 'where is the library?' into German",
        "writing": "Write a short poem about the first snow of winter",
        "other": "asdf qwer zxcv",
    }
    results = await signal.evaluate([request(t) for t in prompts.values()])
    assert [r.value for r in results] == list(prompts)
    code = results[0]
    assert code.matched and code.detail.startswith("code=")  # scores, best first
    assert not results[-1].matched  # 'other' matches nothing by default


async def test_labels_and_confidence_decide_the_match() -> None:
    signal = build("domain", labels=["math"], min_confidence=0.5)
    math, code = await signal.evaluate(
        [
            request("What is the integral of 2x from 0 to 3?"),
            request("Fix this segfault in my C code"),
        ]
    )
    assert math.matched and math.value == "math"
    assert not code.matched and code.value == "code"
    strict = build("domain", labels=["math"], min_confidence=1.0)
    (result,) = await strict.evaluate([request("What is the integral of 2x from 0 to 3?")])
    assert result.value == "math" and not result.matched


def test_an_unknown_label_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no label 'poetry'"):
        build("domain", labels=["poetry"])


def test_a_missing_model_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="crossroads signals train"):
        build("domain", model=str(tmp_path / "missing.npz"))
