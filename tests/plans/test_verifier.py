"""The learned verifier: features, fit, artifact, and a cascade that uses it online."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossroads.exceptions import ConfigError, NotFittedError
from crossroads.plans.verifier import FEATURES, Verifier, answer_features, load_verifier
from tests.plans.conftest import script

GOOD = "2 + 2 = 4, and 4 * 3 = 12.\n#### 12"
BAD = "2 + 2 = 5, and 5 * 3 = 16. Maybe.\n#### 16"


def fitted(tmp_path: Path) -> Path:
    prompts = ["q"] * 40  # the prompt the tests send
    answers = [GOOD, BAD] * 20
    verifier = Verifier(embed=False)
    x = verifier.features(prompts, answers)
    verifier.fit(x, np.array([1, 0] * 20))
    verifier.threshold = 0.5
    return verifier.save(tmp_path / "v.joblib")


def test_features_have_their_names() -> None:
    assert len(answer_features("q", GOOD)) == len(FEATURES)


def test_fit_predict_save_load(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        Verifier(embed=False).predict(np.zeros((1, len(FEATURES))))
    verifier = load_verifier(fitted(tmp_path))
    p = verifier.predict(verifier.features(["q", "q"], [GOOD, BAD]))
    assert p[0] > 0.5 > p[1]
    with pytest.raises(ValueError, match="good and bad"):
        Verifier(embed=False).fit(np.zeros((3, 2)), np.array([1, 1, 1]))


def test_a_missing_or_foreign_artifact_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fit-verifier"):
        load_verifier(tmp_path / "nope.joblib")
    other = tmp_path / "other.joblib"
    import joblib

    joblib.dump({"format": "something else"}, other)
    with pytest.raises(ConfigError, match="not a crossroads verifier"):
        load_verifier(other)


def test_a_cascade_with_a_verifier(gateway_for, tmp_path: Path) -> None:
    path = fitted(tmp_path)
    plan = {
        "kind": "cascade",
        "stages": [
            {"models": ["cheap"], "accept": [{"rule": "verifier", "verifier": str(path)}]},
            {"models": ["big"]},
        ],
    }
    gw = gateway_for(plan)
    raw = gw.client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "q"}],
        metadata=script(cheap={"reply": GOOD}),
    )
    assert raw.headers["x-crossroads-model"] == "cheap"
    raw = gw.client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "q"}],
        metadata=script(cheap={"reply": BAD}, big={"reply": GOOD}),
    )
    assert raw.headers["x-crossroads-model"] == "big"
    trace = gw.trace(raw.headers["x-crossroads-trace-id"])
    assert trace["stages"][0]["reason"].startswith("verifier: p(good)")
    assert trace["stages"][0]["score"] < 0.5
