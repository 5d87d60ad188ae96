import numpy as np
import pytest

from crossroads.routers.objectives import lambda_grid, select

Q = np.array([[0.9, 0.6, 0.3], [0.5, 0.55, 0.1]])
C = np.array([[10.0, 2.0, 1.0], [10.0, 2.0, 1.0]])


def test_lambda_zero_takes_best_quality() -> None:
    assert select(Q, C, lam=0.0).tolist() == [0, 1]


def test_lambda_trades_quality_for_cost() -> None:
    # row 0: 0.9-0.05*10=0.4, 0.6-0.1=0.5, 0.3-0.05=0.25 -> model 1
    assert select(Q, C, lam=0.05).tolist() == [1, 1]
    assert select(Q, C, lam=np.inf).tolist() == [2, 2]


def test_quality_target_takes_cheapest_reaching_it() -> None:
    assert select(Q, C, quality_target=0.5).tolist() == [1, 1]
    # nobody reaches 0.95: fall back to the best predicted
    assert select(Q, C, quality_target=0.95).tolist() == [0, 1]


def test_candidates_restrict_the_choice() -> None:
    assert select(Q, C, lam=0.0, candidates=[1, 2]).tolist() == [1, 1]
    assert select(Q, C, quality_target=0.0, candidates=[0]).tolist() == [0, 0]


def test_exactly_one_objective() -> None:
    with pytest.raises(ValueError, match="exactly one objective"):
        select(Q, C)
    with pytest.raises(ValueError, match="exactly one objective"):
        select(Q, C, lam=1.0, quality_target=0.5)


def test_lambda_grid_spans_all_choices() -> None:
    grid = lambda_grid(Q, C)
    assert 0.0 in grid and np.isinf(grid[-1])
    chosen = {tuple(select(Q, C, lam=lam).tolist()) for lam in grid}
    assert (0, 1) in chosen and (2, 2) in chosen and (1, 1) in chosen
    # negative breakpoints: row 1 buys model 0 although it predicts it slightly worse
    assert (0, 0) in chosen and grid[0] < 0


def test_lambda_grid_with_two_models_is_a_full_threshold_sweep() -> None:
    """Every share of prompts sent to the dearer model, from none to all, is reachable."""
    rng = np.random.default_rng(0)
    q = rng.random((50, 2))
    c = np.tile([10.0, 1.0], (50, 1))
    shares = {float(np.mean(select(q, c, lam=lam) == 0)) for lam in lambda_grid(q, c, n=200)}
    assert 0.0 in shares and 1.0 in shares and len(shares) >= 40
