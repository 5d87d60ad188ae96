"""The discounted mean: epsilon-greedy with epsilon = max_explore, forgetting by decay."""

from __future__ import annotations

from tests.online.support import MODELS, candidates, request, run_stream, selector
from tests.online.test_linucb import sublinear


async def test_finds_the_model_best_on_average() -> None:
    s = selector({"method": "ema", "max_explore": 0.1, "decay": None, "seed": 1})
    choices: list[str] = []
    regret = await run_stream(s, 1500, seed=2, choices=choices)
    # Mean quality over both topics: cheap 0.25, mid 0.6, strong 0.7.
    assert choices[-300:].count("strong") / 300 > 0.85
    # Without context it cannot learn that "mid" is best for prose: regret stays linear.
    assert not sublinear(regret)


async def test_explores_at_most_max_explore() -> None:
    s = selector({"method": "ema", "max_explore": 0.2, "seed": 3})
    for t in range(2000):
        chosen = await s.aselect(request(f"t{t}", "prose"), candidates())
        await s.observe(f"t{t}", 0.9 if chosen.model == "mid" else 0.1)
    assert 0.15 < s.explored / s.selected < 0.25


async def test_decay_forgets_a_model_that_got_worse() -> None:
    s = selector(
        {
            "method": "ema",
            "max_explore": 0.2,
            "decay": {"bucket_s": 10, "buckets": 8, "discount": 0.5},
            "seed": 4,
        }
    )
    now = [0.0]
    s.clock = lambda: now[0]
    best = {"before": "strong", "after": "cheap"}
    chosen_after = []
    for t in range(2400):
        now[0] = t * 0.1
        phase = "before" if t < 1200 else "after"
        chosen = await s.aselect(request(f"t{t}", "prose"), candidates())
        await s.observe(f"t{t}", 0.9 if chosen.model == best[phase] else 0.2)
        if t % 20 == 0:
            await s.sync()
        if t >= 2000:
            chosen_after.append(chosen.model)
    assert chosen_after.count("cheap") / len(chosen_after) > 0.7
    assert set(MODELS) >= set(chosen_after)
