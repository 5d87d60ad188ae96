import json

import numpy as np
import pandas as pd
import pytest

from crossroads.eval.datasets import features_for, load_dataset, split_indices
from crossroads.eval.prices import price_by_name
from crossroads.eval.synthetic import write_dataset


def _write(path, models: dict, cols: dict) -> None:
    path.mkdir()
    base = {"prompt_id": ["a", "b", "c"], "dataset": "t", "task": ["x", "y", "x"], "split": "eval"}
    pd.DataFrame({**base, **cols}).to_parquet(path / "routing.parquet")
    (path / "models.json").write_text(json.dumps(models))


def test_load_synthetic(tmp_path) -> None:
    ds = load_dataset(write_dataset(tmp_path / "syn", n=50))
    assert len(ds) == 50 and ds.has_text
    assert ds.outcomes.models == ["model-0", "model-1", "model-2"]
    assert ds.cost_note.startswith("recorded")


def test_tokens_are_priced_from_the_declared_table(tmp_path) -> None:
    _write(
        tmp_path / "d",
        {"gpt4_turbo": {"cost_unit": "tokens_est"}, "vicuna-7b": {"cost_unit": "tokens_est"}},
        {
            "prompt": ["p", "q", "r"],
            "prompt_tokens_est": [10, 10, 10],
            "score__gpt4_turbo": [1, 1, 0.5],
            "cost__gpt4_turbo": [90, 90, 90],
            "score__vicuna-7b": [0, 1, np.nan],
            "cost__vicuna-7b": [190, 190, 190],
        },
    )
    ds = load_dataset(tmp_path / "d")
    assert ds.cost_unit == "usd_priced" and "declared" in ds.cost_note
    assert ds.outcomes.cost[0].tolist() == pytest.approx([100 * 30e-6, 200 * 0.2e-6])
    assert np.isnan(ds.outcomes.quality[2, 1])


def test_price_only_dataset_without_text_uses_task_features(tmp_path) -> None:
    _write(
        tmp_path / "d",
        {
            "a": {"cost_unit": "none", "price_in_per_mtok": 1.0},
            "b": {"cost_unit": "none", "price_in_per_mtok": 0.1},
        },
        {
            "prompt": ["", "", ""],
            "score__a": [1, 0, 1],
            "cost__a": [np.nan] * 3,
            "score__b": [0, 0, 1],
            "cost__b": [np.nan] * 3,
        },
    )
    ds = load_dataset(tmp_path / "d")
    assert not ds.has_text
    assert ds.outcomes.cost[0].tolist() == pytest.approx([1e-3, 1e-4])
    feats, kind = features_for(ds)
    assert kind.startswith("task-one-hot") and feats.shape == (3, 2)


def test_price_by_name() -> None:
    assert price_by_name("gpt4") == 60.0
    assert price_by_name("claude-instant-1.2") == 2.4
    assert price_by_name("tulu-2-dpo-70b") == 0.9
    assert price_by_name("minichat-3b") == 0.1
    assert price_by_name("mystery-model") == 0.2


def test_seeded_split_is_disjoint_and_stable(tmp_path) -> None:
    ds = load_dataset(write_dataset(tmp_path / "syn", n=200))
    a, b = split_indices(ds, seed=3), split_indices(ds, seed=3)
    assert all((a[k] == b[k]).all() for k in a)
    assert {k: len(v) for k, v in a.items()} == {"train": 110, "val": 30, "test": 60}
    joined = np.concatenate(list(a.values()))
    assert len(np.unique(joined)) == 200


def test_own_train_test_split_is_kept(tmp_path) -> None:
    path = write_dataset(tmp_path / "syn", n=100)
    df = pd.read_parquet(path / "routing.parquet")
    df["split"] = ["test" if i % 4 == 0 else "train" for i in range(100)]
    df.to_parquet(path / "routing.parquet")
    split = split_indices(load_dataset(path))
    assert (split["test"] == np.arange(0, 100, 4)).all()
    assert not set(split["val"]) & set(split["test"])


def test_missing_folder_says_what_to_do(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="routing.parquet"):
        load_dataset(tmp_path)


def test_degenerate_models_are_left_out_unless_asked(tmp_path) -> None:
    _write(
        tmp_path / "d",
        {
            "a": {"cost_unit": "usd"},
            "nullmodel": {"cost_unit": "usd", "variant_or_degenerate": True},
        },
        {
            "prompt": ["p", "q", "r"],
            "score__a": [1, 0, 1],
            "cost__a": [1.0] * 3,
            "score__nullmodel": [1, 1, 1],
            "cost__nullmodel": [0.0] * 3,
        },
    )
    ds = load_dataset(tmp_path / "d")
    assert ds.outcomes.models == ["a"] and ds.excluded_models == ["nullmodel"]
    assert load_dataset(tmp_path / "d", include_degenerate=True).outcomes.models == [
        "a",
        "nullmodel",
    ]
