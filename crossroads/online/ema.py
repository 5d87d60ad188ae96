"""A discounted running mean of quality per model (as in ORCH), epsilon-greedy: the greedy
choice is the highest ``mean − λ·cost``, and with probability ``max_explore`` another
candidate, uniformly. A model never observed and without a prior counts as perfect (1.0),
so each is tried early. The averaging forgets by ``decay`` (buckets of time, each older one
weighing ``discount`` times less): an exponential moving average over time whose updates
commute across replicas."""

from __future__ import annotations

import numpy as np

from crossroads.config import EMASelection
from crossroads.online.base import OnlineSelector
from crossroads.registry import SELECTORS


@SELECTORS.register("ema")
class EMASelector(OnlineSelector):
    """``selection: {method: ema}`` (see :class:`~crossroads.config.EMASelection`)."""

    method = "ema"
    config_class = EMASelection
    contextual = False

    _version = -1

    def means(self) -> np.ndarray:
        """The discounted mean quality of each model (prior included; 1.0 if nothing is
        known: untried models are tried first)."""
        if self._version != self.stats.version:
            quality, strength = self.prior_arrays()
            views = [self.stats.view(a) for a in range(len(self.models))]
            self._weight = strength + np.array([v.n for v in views])
            self._sum = strength * quality + np.array([v.q for v in views])
            known = self._weight > 0
            self._means = np.where(known, self._sum / np.where(known, self._weight, 1.0), 1.0)
            self._version = self.stats.version
        return self._means

    def learn(self, arm: int, x: np.ndarray | None, quality: float) -> None:
        if self._version == self.stats.version:
            self._weight[arm] += 1.0
            self._sum[arm] += quality
            self._means[arm] = self._sum[arm] / self._weight[arm]

    def distribution(
        self, x: np.ndarray | None, arms: np.ndarray, costs: np.ndarray
    ) -> tuple[list[float], int, np.ndarray]:
        value = self.means()[arms] - self.lam * costs
        greedy = int(value.argmax())
        return [1.0 / len(arms)] * len(arms), greedy, value
