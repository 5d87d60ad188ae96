"""Metrics against small cases computed by hand (see docs/metrics.md)."""

import numpy as np
import pytest

from crossroads.eval import metrics


def test_upper_hull_drops_dominated_and_concave_points() -> None:
    pts = np.array([[1, 0.5], [2, 0.7], [3, 0.75], [4, 0.9], [5, 0.85]])
    hull = metrics.upper_hull(pts)
    assert hull.tolist() == [[1, 0.5], [2, 0.7], [4, 0.9]]


def test_aiq_by_hand() -> None:
    # hull (1,.5)-(2,.7)-(4,.9), flat .9 up to 5: area .6 + 1.6 + .9 = 3.1 over a range of 4
    pts = np.array([[1, 0.5], [2, 0.7], [3, 0.75], [4, 0.9], [5, 0.85]])
    assert metrics.aiq(pts, 1, 5) == pytest.approx(0.775)


def test_aiq_is_zero_below_the_cheapest_point() -> None:
    # one point at cost 3, quality .8, range [1, 5]: area 0.8 * 2 over 4
    assert metrics.aiq(np.array([[3, 0.8]]), 1, 5) == pytest.approx(0.4)


def test_aiq_with_one_cost_level_is_the_quality_there() -> None:
    assert metrics.aiq(np.array([[2, 0.6], [2, 0.7]]), 2, 2) == pytest.approx(0.7)


def test_cost_at_quality_interpolates_on_the_hull() -> None:
    pts = np.array([[1, 0.5], [3, 0.9]])
    assert metrics.cost_at_quality(pts, 0.7) == pytest.approx(2.0)
    assert metrics.cost_at_quality(pts, 0.4) == pytest.approx(1.0)
    assert metrics.cost_at_quality(pts, 0.95) == float("inf")


def test_apgr_and_cpt_by_hand() -> None:
    # strong = model 0; strong wins on prompts 0 and 1 only; weak mean .25, strong mean .75
    q = np.array([[1, 0], [1, 0], [1, 1], [0, 0]], dtype=float)
    advantage = np.array([0.9, 0.8, 0.1, 0.0])  # a perfect ranking
    share, pgr = metrics.pgr_curve(q, advantage, strong=0, weak=1)
    assert share.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert pgr.tolist() == pytest.approx([0, 0.5, 1, 1, 1])
    # trapezoid: .25*(0+.5)/2 + .25*(.5+1)/2 + .25 + .25 = .0625 + .1875 + .5
    assert metrics.apgr(share, pgr) == pytest.approx(0.75)
    assert metrics.cpt(share, pgr, 0.5) == 0.25
    assert metrics.cpt(share, pgr, 0.95) == 0.5


def test_random_ranking_has_apgr_near_half() -> None:
    rng = np.random.default_rng(0)
    q = (rng.random((4000, 2)) < [0.8, 0.5]).astype(float)
    share, pgr = metrics.pgr_curve(q, rng.random(4000), strong=0, weak=1)
    assert metrics.apgr(share, pgr) == pytest.approx(0.5, abs=0.05)


def test_summarize_two_models_by_hand() -> None:
    q = np.array([[1, 0], [0, 1], [1, 1], [1, 0]], dtype=float)
    c = np.array([[10, 1]] * 4, dtype=float)
    perfect = np.array([[1, 1, 1, 1], [0, 1, 1, 0], [0, 0, 0, 0]])  # lam=inf, oracle, lam=0
    out = metrics.summarize(q, c, perfect)
    # points: (1, .5), (5.5, 1.0), (10, .75); best single = model 0 (q .75, cost 10)
    assert out["max_quality"] == 1.0
    assert out["quality_at_best_cost"] == 1.0
    # hull reaches .75 at cost 1 + (.25/.5) * 4.5 = 3.25, a share of .325 of 10
    assert out["cost_share_at_best_quality"] == pytest.approx(0.325)
    # aiq over [1, 10]: from 1 to 5.5 mean .75 -> 3.375; 5.5 to 10 at 1 -> 4.5; /9
    assert out["aiq"] == pytest.approx((3.375 + 4.5) / 9)


def test_bootstrap_interval_contains_the_estimate() -> None:
    rng = np.random.default_rng(1)
    q = (rng.random((300, 2)) < [0.8, 0.5]).astype(float)
    c = np.tile([10.0, 1.0], (300, 1))
    choices = np.stack([np.zeros(300, int), np.ones(300, int)])
    point = metrics.summarize(q, c, choices)["aiq"]
    lo, hi = metrics.bootstrap(q, c, choices, n_boot=100)["aiq"]
    assert lo <= point <= hi and hi - lo < 0.2


def test_oracle_at_lambda_zero_takes_best_quality_at_least_cost() -> None:
    q = np.array([[1, 1], [0, 1]], dtype=float)
    c = np.array([[10, 1], [10, 1]], dtype=float)
    assert metrics.oracle_choices(q, c, np.array([0.0]))[0].tolist() == [0, 1]
    # lam slightly above 0 breaks the tie toward the cheaper model
    assert metrics.oracle_choices(q, c, np.array([1e-9]))[0].tolist() == [1, 1]
