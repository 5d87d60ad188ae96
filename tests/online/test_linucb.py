"""LinUCB on a synthetic stream whose best model depends on the request's topic."""

from __future__ import annotations

import numpy as np
import pytest

from tests.online.support import MODELS, candidates, request, run_stream, selector

FEATURES = {"signals": ["keyword:code"], "hash_slots": 2}


def sublinear(regret: np.ndarray) -> bool:
    """The last quarter of the stream loses less than a third of what the first quarter did
    per request: a learner's regret flattens, a fixed or random policy's grows linearly."""
    q = len(regret) // 4
    return bool(regret[-q:].mean() < regret[:q].mean() / 3)


async def test_regret_is_sublinear_and_a_random_policy_fails_the_same_test() -> None:
    s = selector({"method": "linucb", "features": FEATURES, "max_explore": 0.2, "seed": 1})
    learned = await run_stream(s, 1200, seed=3)
    uniform = await run_stream(None, 1200, seed=3)
    assert sublinear(learned)
    assert not sublinear(uniform)
    assert learned.sum() < uniform.sum() / 4


async def test_delayed_feedback_still_converges() -> None:
    s = selector({"method": "linucb", "features": FEATURES, "max_explore": 0.2, "seed": 1})
    regret = await run_stream(s, 1200, seed=4, delay=50)
    assert sublinear(regret)


async def test_propensity_is_the_probability_of_the_choice() -> None:
    s = selector({"method": "linucb", "features": FEATURES, "max_explore": 0.25, "seed": 2})
    first = await s.aselect(request("t0", "code"), candidates())
    assert first.propensity == 1.0  # nothing known: UCB and greedy agree
    assert await s.observe("t0", 0.3)
    seen = []
    for t in range(1, 200):
        chosen = await s.aselect(request(f"t{t}", "code"), candidates())
        seen.append((chosen.model, chosen.propensity))
    # The observed model is the greedy choice, an unobserved one has the highest upper
    # bound: the exploring choice is taken with p = max_explore, the greedy one with 1 - it.
    assert {p for _, p in seen} == {0.25, 0.75}  # rounded to 6 places
    greedy = [m for m, p in seen if p == 0.75]
    assert set(greedy) == {first.model}
    share = 1 - len(greedy) / len(seen)
    assert 0.15 < share < 0.35


async def test_feedback_for_an_unknown_or_expired_trace_is_refused() -> None:
    s = selector({"method": "linucb", "features": FEATURES, "feedback_ttl_s": 60})
    now = [1000.0]
    s.clock = lambda: now[0]
    await s.aselect(request("old", "code"), candidates())
    await s.aselect(request("fresh", "code"), candidates())
    assert not await s.observe("never-routed", 0.5)
    now[0] += 61
    assert not await s.observe("old", 0.5)
    await s.aselect(request("late", "code"), candidates())
    assert await s.observe("late", 0.5)
    assert not await s.observe("late", 0.5)  # taken once


async def test_a_reward_outside_unit_interval_is_an_error() -> None:
    s = selector({"method": "linucb"})
    await s.aselect(request("t", "code"), candidates())
    with pytest.raises(ValueError, match=r"quality in \[0, 1\]"):
        await s.observe("t", 1.5)


async def test_the_cost_term_moves_the_choice_to_the_cheaper_model() -> None:
    s = selector(
        {
            "method": "linucb",
            "priors": {m: 0.8 for m in MODELS},
            "prior_strength": 50,
            "objective": {"lambda": 1.0},
            "max_explore": 0.0,
        }
    )
    cands = candidates()
    for c, cost in zip(cands, [0.01, 0.1, 0.5], strict=True):
        c.estimated_cost = cost
    chosen = await s.aselect(request("t", "prose"), cands)
    assert chosen.model == "cheap"
    assert chosen.propensity == 1.0
    assert [c.model for c in cands] == MODELS
