"""Sufficient statistics of the learners, as counters that add.

Per model and time bucket one hash of integer counters, fixed-point (``SCALE`` per unit):
``n`` observations, ``q`` summed quality, ``r`` summed reward, and for contextual learners
the upper triangle of ``A = Σ x xᵀ`` (``A<i>.<j>``) and ``b = Σ q x`` (``b<i>``). Integer
addition commutes, so the updates of any number of replicas, in any order, give the same
totals (``add_counters`` is atomic on every backend). A bucket is ``floor(t / bucket_s)``;
the last ``buckets`` count, weighted ``discount ** age``; without decay there is one bucket
that lives as long as it keeps changing.

Locally the view is ``prior + backend (as last read) + increments not yet read back``; a
bucket older than the previous one never changes again, so it is decoded once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crossroads.config import OnlineDecay

SCALE = 1_000_000
STATIONARY_TTL_S = 30 * 86400  # without decay: statistics live this long after their last change


@dataclass(slots=True)
class Moments:
    """Summed statistics of one model (floats): observations, quality, reward, A, b."""

    n: float
    q: float
    r: float
    A: np.ndarray
    b: np.ndarray

    @classmethod
    def zeros(cls, d: int) -> Moments:
        return cls(0.0, 0.0, 0.0, np.zeros((d, d)), np.zeros(d))

    def add(self, other: Moments, weight: float = 1.0) -> None:
        self.n += weight * other.n
        self.q += weight * other.q
        self.r += weight * other.r
        if self.b.size:
            self.A += weight * other.A
            self.b += weight * other.b


class Codec:
    """Counters ↔ :class:`Moments` for ``d``-wide contexts."""

    def __init__(self, d: int) -> None:
        self.d = d
        self.rows, self.cols = np.triu_indices(d)
        self.a_fields = [f"A{i}.{j}" for i, j in zip(self.rows, self.cols, strict=True)]
        self.b_fields = [f"b{i}" for i in range(d)]
        self.fields = ["n", "q", "r", *self.a_fields, *self.b_fields]

    def encode(self, x: np.ndarray | None, quality: float, reward: float) -> np.ndarray:
        """The counter increments of one observation, in the order of :attr:`fields`."""
        out = np.zeros(len(self.fields), dtype=np.int64)
        out[0], out[1], out[2] = SCALE, round(quality * SCALE), round(reward * SCALE)
        if x is not None and self.d:
            t = len(self.a_fields)
            out[3 : 3 + t] = np.rint(np.outer(x, x)[self.rows, self.cols] * SCALE)
            out[3 + t :] = np.rint(x * (quality * SCALE))
        return out

    def counters(self, increments: np.ndarray) -> dict[str, int]:
        """Increments (as from :meth:`encode`, summed) as the hash ``add_counters`` takes."""
        return {f: v for f, v in zip(self.fields, increments.tolist(), strict=True) if v}

    def moments(self, x: np.ndarray | None, quality: float, reward: float) -> Moments:
        """One observation as floats (the same numbers :meth:`encode` counts)."""
        m = Moments.zeros(self.d)
        m.n, m.q, m.r = 1.0, quality, reward
        if x is not None and self.d:
            m.A = np.outer(x, x)
            m.b = x * quality
        return m

    def decode(self, counters: dict[str, int]) -> Moments:
        """A hash of counters as floats."""
        m = Moments.zeros(self.d)
        if not counters:
            return m
        get = counters.get
        m.n = get("n", 0) / SCALE
        m.q = get("q", 0) / SCALE
        m.r = get("r", 0) / SCALE
        if self.d:
            upper = np.fromiter((get(f, 0) for f in self.a_fields), np.float64) / SCALE
            m.A[self.rows, self.cols] = upper
            m.A[self.cols, self.rows] = upper
            m.b = np.fromiter((get(f, 0) for f in self.b_fields), np.float64) / SCALE
        return m


class Buckets:
    """Which bucket a moment falls in, which count, how much each weighs, how long keys live."""

    def __init__(self, decay: OnlineDecay | None) -> None:
        self.decay = decay

    def current(self, now: float) -> int:
        """The bucket of ``now`` (0 for stationary statistics)."""
        return 0 if self.decay is None else math.floor(now / self.decay.bucket_s)

    def live(self, now: float) -> list[int]:
        """The buckets that count at ``now``, newest first."""
        if self.decay is None:
            return [0]
        cur = self.current(now)
        return [cur - age for age in range(self.decay.buckets)]

    def weight(self, bucket: int, now: float) -> float:
        """How much ``bucket`` weighs at ``now``."""
        if self.decay is None:
            return 1.0
        return float(self.decay.discount ** (self.current(now) - bucket))

    @property
    def ttl_s(self) -> float:
        """How long a bucket's counters live after their last change."""
        if self.decay is None:
            return STATIONARY_TTL_S
        return self.decay.bucket_s * (self.decay.buckets + 1)


class SharedStatistics:
    """The local view of every model's statistics (see the module docstring)."""

    def __init__(self, models: Sequence[str], d: int, decay: OnlineDecay | None) -> None:
        self.models = list(models)
        self.codec = Codec(d)
        self.buckets = Buckets(decay)
        self._sealed: dict[tuple[int, int], Moments] = {}  # (arm, bucket) no longer changing
        self._backend = [Moments.zeros(d) for _ in self.models]  # weighted, as last read
        self._local = [Moments.zeros(d) for _ in self.models]  # not yet read back
        self._inflight = [Moments.zeros(d) for _ in self.models]  # sent, not yet read back
        self.version = 0  # changes whenever the backend's part of the view does

    def observe(self, arm: int, moments: Moments) -> None:
        """Add one local observation to the view (``version`` counts only reads: a learner
        applies a local observation to its own model incrementally)."""
        self._local[arm].add(moments)

    def view(self, arm: int) -> Moments:
        """The statistics of ``arm`` as this replica sees them now."""
        d = self.codec.d
        total = Moments.zeros(d)
        total.add(self._backend[arm])
        total.add(self._inflight[arm])
        total.add(self._local[arm])
        return total

    def begin_sync(self) -> None:
        """The local increments are being sent: keep them in the view until read back."""
        for arm in range(len(self.models)):
            self._inflight[arm].add(self._local[arm])
            self._local[arm] = Moments.zeros(self.codec.d)

    def abort_sync(self) -> None:
        """The send failed: the increments are local again (and will be sent again)."""
        for arm in range(len(self.models)):
            self._local[arm].add(self._inflight[arm])
            self._inflight[arm] = Moments.zeros(self.codec.d)

    def to_read(self, now: float) -> list[tuple[int, int]]:
        """(arm, bucket) pairs to read: the two newest live buckets and any not yet sealed."""
        live = self.buckets.live(now)
        return [
            (arm, bucket)
            for arm in range(len(self.models))
            for i, bucket in enumerate(live)
            if i < 2 or (arm, bucket) not in self._sealed
        ]

    def absorb(self, read: list[tuple[int, int]], rows: list[dict[str, int]], now: float) -> None:
        """Replace the backend part of the view with what was read (``rows`` for ``read``)."""
        live = self.buckets.live(now)
        fresh = {pair: self.codec.decode(row) for pair, row in zip(read, rows, strict=True)}
        for (arm, bucket), m in fresh.items():
            if bucket < live[0] - 1:
                self._sealed[(arm, bucket)] = m
        oldest = live[-1]
        self._sealed = {k: v for k, v in self._sealed.items() if k[1] >= oldest}
        for arm in range(len(self.models)):
            total = Moments.zeros(self.codec.d)
            for bucket in live:
                found = fresh.get((arm, bucket)) or self._sealed.get((arm, bucket))
                if found is not None:
                    total.add(found, self.buckets.weight(bucket, now))
            self._backend[arm] = total
            self._inflight[arm] = Moments.zeros(self.codec.d)
        self.version += 1
