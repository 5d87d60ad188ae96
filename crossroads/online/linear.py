"""The posterior shared by LinUCB and linear Thompson sampling: per model a ridge
regression of quality on the context, its prior mean folded in as pseudo-observations of the
bias feature. The inverse of each model's ``A`` is rebuilt after every read from the state
backend and updated in between by Sherman-Morrison (one observation: O(d²), no inversion)."""

from __future__ import annotations

import numpy as np

from crossroads.online.base import OnlineSelector


class LinearPosterior(OnlineSelector):
    """Adds :meth:`posterior`: per candidate the predicted quality and its variance."""

    _version = -1

    def _refit(self) -> None:
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
        self._inverse = np.linalg.inv(A)
        self._b = b
        self._theta = np.einsum("kij,kj->ki", self._inverse, b)
        self._version = self.stats.version

    def learn(self, arm: int, x: np.ndarray | None, quality: float) -> None:
        if self._version != self.stats.version or x is None:
            return  # rebuilt from the statistics (which hold it) at the next selection
        inverse = self._inverse[arm]
        ax = inverse @ x
        inverse -= np.outer(ax, ax) / (1.0 + x @ ax)
        self._b[arm] += quality * x
        self._theta[arm] = inverse @ self._b[arm]

    def posterior(self, x: np.ndarray, arms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted quality and its variance (in units of the regression) per arm."""
        if self._version != self.stats.version:
            self._refit()
        mean = self._theta[arms] @ x
        inverse = self._inverse if len(arms) == len(self.models) else self._inverse[arms]
        variance = inverse @ x @ x
        return mean, np.maximum(variance, 0.0)
