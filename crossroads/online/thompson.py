"""Linear Thompson sampling (Agrawal & Goyal, 2013). Per candidate the posterior of
``quality − λ·cost`` is normal (mean from the ridge regression, variance
``scale² · xᵀA⁻¹x``); the policy is each candidate's probability of being the best under it,
estimated from ``samples`` draws, and the choice is drawn from that distribution (after the
exploration bound), so the recorded propensity is the probability actually used."""

from __future__ import annotations

import numpy as np

from crossroads.config import ThompsonSelection
from crossroads.online.linear import LinearPosterior
from crossroads.registry import SELECTORS


@SELECTORS.register("thompson")
class ThompsonSelector(LinearPosterior):
    """``selection: {method: thompson}`` (see :class:`~crossroads.config.ThompsonSelection`)."""

    method = "thompson"
    config_class = ThompsonSelection

    def distribution(
        self, x: np.ndarray | None, arms: np.ndarray, costs: np.ndarray
    ) -> tuple[list[float], int, np.ndarray]:
        assert x is not None
        mean, variance = self.posterior(x, arms)
        value = mean - self.lam * costs
        std = self.config.scale * np.sqrt(variance)
        draws = self._rng.standard_normal((self.config.samples, len(arms))) * std + value
        wins = np.bincount(draws.argmax(axis=1), minlength=len(arms))
        return (wins / self.config.samples).tolist(), int(value.argmax()), value
