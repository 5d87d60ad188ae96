"""The posterior shared by LinUCB and linear Thompson sampling: per model a ridge
regression of quality on the context, its prior mean folded in as pseudo-observations of the
bias feature."""

from __future__ import annotations

import numpy as np

from crossroads.online.base import OnlineSelector


class LinearPosterior(OnlineSelector):
    """Adds :meth:`posterior`: per candidate the predicted quality and its variance."""

    def _fit(self) -> tuple[np.ndarray, np.ndarray]:
        version = self.stats.version
        cached = getattr(self, "_fitted", None)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        d = self.stats.codec.d
        quality, strength = self.prior_arrays()
        k = len(self.models)
        A = np.empty((k, d, d))
        b = np.empty((k, d))
        for arm in range(k):
            m = self.stats.view(arm)
            A[arm] = m.A
            b[arm] = m.b
        A += self.config.ridge * np.eye(d)
        A[:, 0, 0] += strength
        b[:, 0] += strength * quality
        inverse = np.linalg.inv(A)
        theta = np.einsum("kij,kj->ki", inverse, b)
        self._fitted = (version, theta, inverse)
        return theta, inverse

    def posterior(self, x: np.ndarray, arms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted quality and its variance (in units of the regression) per arm."""
        theta, inverse = self._fit()
        mean = theta[arms] @ x
        variance = np.einsum("i,kij,j->k", x, inverse[arms], x)
        return mean, np.maximum(variance, 0.0)
