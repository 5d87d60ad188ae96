from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossroads.exceptions import ConfigError
from crossroads.signals.heads import Head, builtin_head_path, load_head, resolve_head


def _two_layer() -> Head:
    rng = np.random.default_rng(0)
    return Head(
        [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)],
        [np.zeros(3, np.float32), np.array([0.5, -0.5], np.float32)],
        ["a", "b"],
        meta={"note": "x"},
        arrays={"references": np.ones((2, 4), np.float16)},
    )


def test_softmax_rows_sum_to_one_and_follow_the_logits() -> None:
    head = Head([np.eye(2, dtype=np.float32)], [np.zeros(2, np.float32)], ["x", "y"])
    scores = head.scores(np.array([[3.0, 0.0], [0.0, 3.0]], np.float32))
    assert np.allclose(scores.sum(axis=1), 1.0)
    assert scores.argmax(axis=1).tolist() == [0, 1]


def test_sigmoid_head_gives_one_score_per_row() -> None:
    head = Head([np.array([[1.0]], np.float32)], [np.zeros(1, np.float32)], ["p"], "sigmoid")
    scores = head.scores(np.array([[0.0], [10.0], [-10.0]], np.float32))
    assert scores.shape == (3,)
    assert scores[0] == pytest.approx(0.5) and scores[1] > 0.99 and scores[2] < 0.01


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    head = _two_layer()
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    loaded = load_head(head.save(tmp_path / "h.npz"))
    assert loaded.labels == ["a", "b"] and loaded.meta == {"note": "x"}
    assert np.allclose(loaded.scores(x), head.scores(x))
    assert loaded.arrays["references"].dtype == np.float16
    assert loaded.dimension == 4


def test_missing_and_foreign_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="crossroads signals train"):
        load_head(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ConfigError, match="not a crossroads signal head"):
        load_head(tmp_path / "other.npz")


def test_builtin_heads_ship_in_the_package() -> None:
    for name in ("domain", "complexity", "jailbreak"):
        assert builtin_head_path(name).is_file(), name
    domain = resolve_head("domain", None)
    assert "code" in domain.labels and domain.dimension == 384
    assert "references" in domain.arrays and "ood_min_similarity" in domain.meta
