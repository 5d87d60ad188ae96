"""What every online selector shares: pending contexts in the state backend, statistics that
replicas add together, the exploration bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossroads.online.base import OnlineSelector, bound_exploration
from crossroads.state import open_state
from tests.online.support import MODELS, candidates, request, run_stream, selector
from tests.online.test_linucb import FEATURES, sublinear
from tests.support.redis import REDIS_URL, unique_prefix

prefix = pytest.fixture(unique_prefix, name="prefix")


async def close(*selectors: OnlineSelector) -> None:
    for s in selectors:
        await s.aclose()
        await s.state.backend.aclose()  # given to the selector: the test owns it


def test_bound_exploration_caps_the_mass_off_the_greedy_choice() -> None:
    probs = bound_exploration([0.2, 0.5, 0.3], 0, 0.1)
    assert probs == pytest.approx([0.9, 0.0625, 0.0375])
    same = [0.95, 0.05]
    assert bound_exploration(same, 0, 0.1) is same


async def test_two_replicas_on_one_redis_learn_together(prefix: str) -> None:
    state = {"backend": REDIS_URL, "key_prefix": prefix}
    spec = {"method": "linucb", "features": FEATURES, "max_explore": 0.2, "seed": 1}
    a = selector(spec, state, open_state(REDIS_URL, timeout_s=2.0))
    b = selector({**spec, "seed": 2}, state, open_state(REDIS_URL, timeout_s=2.0))
    # Replica a alone learns the stream; b only syncs, never observes.
    await run_stream(a, 800, seed=3)
    await a.sync()
    await b.sync()
    theta_a = a._theta  # noqa: SLF001
    b.posterior(np.ones(b.features.dimension), np.arange(len(MODELS)))
    assert np.allclose(b._theta, theta_a, atol=1e-4)  # noqa: SLF001
    # b now serves as well as a: what a learned is what b selects with.
    regret = await run_stream(b, 300, seed=9)
    assert regret.mean() < 0.1
    await close(a, b)


async def test_updates_of_two_replicas_commute(prefix: str) -> None:
    state = {"backend": REDIS_URL, "key_prefix": prefix}
    spec = {"method": "linucb", "features": FEATURES}
    a = selector(spec, state, open_state(REDIS_URL, timeout_s=2.0))
    b = selector(spec, state, open_state(REDIS_URL, timeout_s=2.0))
    for t in range(40):
        s = a if t % 2 else b
        await s.aselect(request(f"t{t}", "code" if t % 3 else "prose"), candidates())
        assert await s.observe(f"t{t}", (t % 7) / 7)
    await a.sync()
    await b.sync()
    await a.sync()  # a reads what b sent after a's first sync
    for arm in range(len(MODELS)):
        va, vb = a.stats.view(arm), b.stats.view(arm)
        assert va.n == vb.n
        assert np.allclose(va.A, vb.A) and np.allclose(va.b, vb.b)
    assert sum(a.stats.view(arm).n for arm in range(len(MODELS))) == 40
    await close(a, b)


async def test_feedback_reaches_the_replica_that_did_not_route(prefix: str) -> None:
    state = {"backend": REDIS_URL, "key_prefix": prefix}
    spec = {"method": "linucb", "features": FEATURES}
    a = selector(spec, state, open_state(REDIS_URL, timeout_s=2.0))
    b = selector(spec, state, open_state(REDIS_URL, timeout_s=2.0))
    chosen = await a.aselect(request("r1", "code"), candidates())
    assert not await b.observe("r1", 0.9)  # not yet written: unknown to b
    await a.sync()
    assert await b.observe("r1", 0.9)
    await b.sync()
    assert not await a.observe("r1", 0.9)  # taken by b: a does not count it again
    await a.sync()
    arm = MODELS.index(chosen.model)
    assert a.stats.view(arm).n >= 1
    await close(a, b)


async def test_a_dead_backend_never_blocks_selection() -> None:
    dead = open_state("redis://127.0.0.1:1/0", timeout_s=0.2)
    s = selector(
        {"method": "linucb", "features": FEATURES},
        {"backend": "redis://127.0.0.1:1/0", "timeout_ms": 200, "retry_after_s": 60},
        dead,
    )
    regret = await run_stream(s, 300, seed=1, sync_every=50)
    assert not await s.sync()  # queued, not lost
    assert s._deltas  # noqa: SLF001
    assert sublinear(regret)  # learned from the local view
    await dead.aclose()


async def test_two_workers_on_one_sqlite_file_learn_together(tmp_path: Path) -> None:
    spec = f"sqlite:///{tmp_path / 'state.db'}"
    state = {"backend": spec}
    a = selector({"method": "thompson", "features": FEATURES}, state, open_state(spec))
    b = selector({"method": "thompson", "features": FEATURES}, state, open_state(spec))
    await run_stream(a, 200, seed=1)
    await a.sync()
    await b.sync()
    for arm in range(len(MODELS)):
        assert b.stats.view(arm).n == a.stats.view(arm).n
    assert sum(b.stats.view(arm).n for arm in range(len(MODELS))) == 200
    await close(a, b)
