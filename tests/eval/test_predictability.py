import numpy as np
from sklearn.metrics import roc_auc_score

from crossroads.eval.predictability import (
    cheap_models,
    roc_auc,
    substitution_labels,
    substitution_scores,
)


def test_roc_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # many ties
    assert abs(roc_auc(y, s) - roc_auc_score(y, s)) < 1e-12
    assert np.isnan(roc_auc(np.ones(5), np.arange(5)))


def test_substitution_labels_and_scores_by_hand() -> None:
    # models: 0 best and dear, 1 cheap, 2 cheap; prompt 0: a cheap model ties the best.
    quality = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
    cheap = cheap_models(np.array([10.0, 5.0, 1.0]), best=0)
    assert cheap.tolist() == [1, 2]
    assert substitution_labels(quality, 0, cheap).tolist() == [1, 0, 1]
    predicted = np.array([[0.9, 0.8, 0.1], [0.9, 0.2, 0.3], [0.5, 0.4, 0.6]])
    np.testing.assert_allclose(substitution_scores(predicted, 0, cheap), [-0.1, -0.6, 0.1])
