"""Linear Thompson sampling: converges on the synthetic stream; propensities are the
probabilities the choice was drawn with."""

from __future__ import annotations

import numpy as np

from crossroads.online.base import Pending
from tests.online.support import candidates, request, run_stream, selector
from tests.online.test_linucb import FEATURES, sublinear


async def test_regret_is_sublinear() -> None:
    s = selector({"method": "thompson", "features": FEATURES, "max_explore": 0.3, "seed": 5})
    regret = await run_stream(s, 1200, seed=6)
    assert sublinear(regret)
    assert regret.sum() < (await run_stream(None, 1200, seed=6)).sum() / 4


async def test_propensities_match_the_observed_choice_frequencies() -> None:
    s = selector({"method": "thompson", "features": FEATURES, "max_explore": 1.0, "seed": 7})
    for t, (model, q) in enumerate([("cheap", 0.5), ("mid", 0.55), ("strong", 0.45)] * 3):
        x = s.features.vector(request(f"w{t}", "prose"))
        s._pending[f"w{t}"] = Pending(s.index[model], x, 1.0, 0.0, s.clock())
        assert await s.observe(f"w{t}", q)
    counts: dict[str, int] = {}
    propensity: dict[str, list[float]] = {}
    n = 3000
    for t in range(n):
        chosen = await s.aselect(request(f"t{t}", "prose"), candidates())
        counts[chosen.model] = counts.get(chosen.model, 0) + 1
        propensity.setdefault(chosen.model, []).append(chosen.propensity or 0.0)
    for model, k in counts.items():
        # The state does not change (no feedback): every draw uses one distribution.
        assert abs(k / n - float(np.mean(propensity[model]))) < 0.05
