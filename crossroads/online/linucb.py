"""LinUCB (Li et al., 2010), disjoint: the exploring choice is the candidate with the highest
``quality + alpha * std − λ·cost``; it is taken with probability ``max_explore`` at most
when it is not the greedy one."""

from __future__ import annotations

import numpy as np

from crossroads.config import LinUCBSelection
from crossroads.online.linear import LinearPosterior
from crossroads.registry import SELECTORS


@SELECTORS.register("linucb")
class LinUCBSelector(LinearPosterior):
    """``selection: {method: linucb}`` (see :class:`~crossroads.config.LinUCBSelection`)."""

    method = "linucb"
    config_class = LinUCBSelection

    def distribution(
        self, x: np.ndarray | None, arms: np.ndarray, costs: np.ndarray
    ) -> tuple[list[float], int, np.ndarray]:
        assert x is not None
        mean, variance = self.posterior(x, arms)
        value = mean - self.lam * costs
        upper = value + self.config.alpha * np.sqrt(variance)
        probs = [0.0] * len(arms)
        probs[int(upper.argmax())] = 1.0
        return probs, int(value.argmax()), upper
