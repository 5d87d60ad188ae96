"""Replaying a cascade on stored answers decides as the gateway's acceptance rules do."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from crossroads.config.plans import CascadePlan
from crossroads.plans.accept import Acceptance
from crossroads.plans.calls import Answer
from crossroads.plans.replay import (
    StoredAnswers,
    cascade_points,
    check_replayable,
    knob_grid,
    knobs,
    serve_rows,
    stage_outcome,
)
from crossroads.prompts import routing_request
from crossroads.types import Caller, Message, Request

MODELS = ["a", "b", "c"]
POOL = ["#### 3", "#### 4", "The answer is 3.", "", "I'm sorry, I can't help with that.", "#### 3"]


def plan(*accept: dict) -> CascadePlan:
    return CascadePlan.model_validate(
        {
            "kind": "cascade",
            "stages": [{"models": MODELS, "accept": list(accept)}, {"models": ["z"]}],
        }
    )


def stored(n: int, seed: int = 0) -> StoredAnswers:
    rng = np.random.default_rng(seed)
    texts = {m: [POOL[i] for i in rng.integers(0, len(POOL), n)] for m in [*MODELS, "z"]}
    return StoredAnswers(
        prompts=[f"q{i}" for i in range(n)],
        texts=texts,
        quality={m: rng.random(n) for m in texts},
        cost={m: np.full(n, 1.0 + i) for i, m in enumerate(texts)},
    )


def gateway_judgement(rules: list, texts: list[str]) -> tuple[bool, int]:
    request = Request("chat", "auto", "openai_chat", messages=[Message("user", "q")])
    facts = routing_request(request, "chat", Caller())
    answers = [Answer(0, None, None, "-", 0.0, text=t) for t in texts]  # type: ignore[arg-type]
    judgement = asyncio.run(Acceptance(rules).prepare().judge(answers, request, facts))
    if judgement.chosen is None:
        return False, -1
    return True, answers.index(judgement.chosen)


@pytest.mark.parametrize(
    "accept",
    [
        [{"rule": "checks"}],
        [{"rule": "agreement", "answer": "number"}],
        [{"rule": "checks"}, {"rule": "agreement", "answer": "number", "min_agree": 2}],
        [{"rule": "checks"}, {"rule": "agreement", "answer": "number", "min_agree": 3}],
    ],
)
def test_each_prompt_is_decided_as_the_gateway_decides(accept: list[dict]) -> None:
    p = plan(*accept)
    data = stored(60)
    accepted, served = stage_outcome(p.stages[0], data, {})
    for r in range(60):
        ok, index = gateway_judgement(p.stages[0].accept, [data.texts[m][r] for m in MODELS])
        assert accepted[r] == ok, [data.texts[m][r] for m in MODELS]
        if ok:
            assert served[r] == index


def test_free_text_agreement_follows_the_similarity_threshold() -> None:
    p = plan({"rule": "agreement", "answer": "text", "similarity": 0.9})
    data = stored(3)
    # Prompt 0: a and b nearly identical; prompt 1: all apart; prompt 2: b and c close.
    e = np.eye(3, dtype=np.float32)
    close = np.array([0.96, 0.28, 0.0], dtype=np.float32)
    vectors = {"a": np.stack([e[0], e[0], e[1]]), "b": np.stack([close, e[1], e[2]])}
    vectors["c"] = np.stack([e[2], e[2], np.array([0.3, 0.0, 0.954], dtype=np.float32)])
    data.vectors = lambda m: vectors[m]
    (dial,) = knobs(p)
    assert dial.path == "stages[0].accept[0].similarity"
    accepted, served = stage_outcome(p.stages[0], data, {})
    assert accepted.tolist() == [True, False, True] and served[[0, 2]].tolist() == [0, 1]
    accepted, _ = stage_outcome(p.stages[0], data, {0: 0.99})
    assert not accepted.any()


def test_cost_is_every_stage_called_and_quality_the_served_answer() -> None:
    p = plan({"rule": "checks"})
    data = stored(40, seed=3)
    outcome = stage_outcome(p.stages[0], data, {})
    quality, cost, shares = serve_rows(p, data, [outcome])
    accepted, served = outcome
    cheap = sum(data.cost[m] for m in MODELS)
    assert np.allclose(cost, np.where(accepted, cheap, cheap + data.cost["z"]))
    q = np.stack([data.quality[m] for m in MODELS], 1)[np.arange(40), served]
    assert np.allclose(quality, np.where(accepted, q, data.quality["z"]))
    assert shares == pytest.approx([accepted.mean(), 1 - accepted.mean()])
    points, _, combos = cascade_points(p, data, [[outcome, outcome]])
    assert len(combos) == 2 and np.allclose(points[0], [cost.mean(), quality.mean()])


def test_what_stored_answers_cannot_replay_is_refused() -> None:
    with pytest.raises(ValueError, match="no stored response carries logprobs"):
        check_replayable(plan({"rule": "confidence", "threshold": -0.5}))
    sampled = CascadePlan.model_validate(
        {
            "kind": "cascade",
            "stages": [
                {"models": ["a"], "samples": 3, "accept": [{"rule": "agreement"}]},
                {"models": ["z"]},
            ],
        }
    )
    with pytest.raises(ValueError, match="one answer per model"):
        check_replayable(sampled)


def test_grids_stay_inside_what_the_config_allows() -> None:
    p = plan({"rule": "agreement", "answer": "text"})
    (dial,) = knobs(p)
    grid = knob_grid(dial, np.array([-0.3, 0.2, 0.5, 0.99]), 10)
    assert grid[0] > 0 and grid[-1] == 1.0 and grid == sorted(grid)
