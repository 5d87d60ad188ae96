"""Fixed-point statistics: they add exactly, in any order, and decay by bucket age."""

from __future__ import annotations

import numpy as np

from crossroads.config import OnlineDecay
from crossroads.online.stats import Buckets, Codec, SharedStatistics


def test_encoded_increments_decode_to_the_observation() -> None:
    codec = Codec(3)
    x = np.array([1.0, 0.25, -0.5])
    m = codec.decode(codec.counters(codec.encode(x, 0.7, 0.6)))
    assert m.n == 1 and m.q == 0.7 and m.r == 0.6
    assert np.allclose(m.A, np.outer(x, x), atol=1e-6)
    assert np.allclose(m.b, 0.7 * x, atol=1e-6)


def test_sums_of_increments_do_not_depend_on_their_order() -> None:
    codec = Codec(4)
    rng = np.random.default_rng(0)
    increments = [codec.encode(rng.normal(size=4), float(rng.random()), 0.0) for _ in range(50)]
    forward = sum(increments[1:], increments[0])
    backward = sum(increments[-2::-1], increments[-1])
    assert np.array_equal(forward, backward)  # integers: exactly


def test_buckets_weigh_older_statistics_less() -> None:
    buckets = Buckets(OnlineDecay(bucket_s=10, buckets=3, discount=0.5))
    assert buckets.live(35.0) == [3, 2, 1]
    assert [buckets.weight(b, 35.0) for b in (3, 2, 1)] == [1.0, 0.5, 0.25]
    assert Buckets(None).live(1e9) == [0]


def test_sealed_buckets_are_read_once_and_expire() -> None:
    stats = SharedStatistics(["a"], 0, OnlineDecay(bucket_s=10, buckets=4, discount=1.0))
    first = stats.to_read(45.0)
    assert [b for _, b in first] == [4, 3, 2, 1]
    stats.absorb(first, [{"n": 1_000_000}] * 4, 45.0)
    assert stats.view(0).n == 4
    again = stats.to_read(45.0)
    assert [b for _, b in again] == [4, 3]  # 2 and 1 no longer change
    stats.absorb(again, [{"n": 1_000_000}] * 2, 45.0)
    assert stats.view(0).n == 4
    later = stats.to_read(65.0)  # buckets 6..3: 2 and 1 fell out of the window
    stats.absorb(later, [{}] * len(later), 65.0)
    assert stats.view(0).n == 0
