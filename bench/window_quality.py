"""Routing quality of head-only vs head+tail embeddings, on the long prompts themselves.

``crossroads eval --window head|head_tail`` compares the windows over whole test splits,
where prompts longer than the encoder's 256 tokens are a minority (2-28%) and a difference
on them is diluted. This script uses the same library code (cached MiniLM features, the
seeded train/val/test split, routers with their default parameters fitted on train, the
metrics of ``crossroads.eval.metrics`` over the λ sweep) and reports each metric on the
test prompts that do not fit in the window, as well as on all test prompts.

    python -m bench.window_quality --data ../shared/data/routellm-evals [--data ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def compare(path: Path, routers: list[str], seed: int = 0) -> dict[str, Any]:
    """Per window and router: AIQ and quality at the best single model's cost, on all test
    prompts and on the long ones."""
    import numpy as np

    from crossroads.embeddings import Embedder
    from crossroads.eval import metrics
    from crossroads.eval.datasets import features_for, load_dataset, split_indices
    from crossroads.routers import make
    from crossroads.routers.objectives import lambda_grid, select

    ds = load_dataset(path)
    assert ds.prompts is not None
    split = split_indices(ds, seed=seed)
    train, test = split["train"], split["test"]
    fits = np.array(Embedder().fits([ds.prompts[i] for i in test]))
    out: dict[str, Any] = {
        "dataset": ds.name,
        "test": int(len(test)),
        "long_test": int((~fits).sum()),
        "rows": [],
    }
    quality, cost = ds.outcomes.quality, ds.outcomes.cost
    assert cost is not None
    q_train = np.nanmean(quality[train], axis=0)
    q_test = np.where(np.isnan(quality[test]), q_train, quality[test])
    c_test = cost[test]
    for window in ("head", "head_tail"):
        features, _ = features_for(ds, window=window)  # type: ignore[arg-type]
        for name in routers:
            router = make(name).fit(features[train], ds.outcomes.subset(train))
            pred_q, pred_c = router.predict(features[test]), router.predict_cost(features[test])
            choices = np.stack(
                [select(pred_q, pred_c, lam=lam) for lam in lambda_grid(pred_q, pred_c)]
            )
            row: dict[str, Any] = {"window": window, "router": name}
            for part, rows in (("all", np.arange(len(test))), ("long", np.flatnonzero(~fits))):
                got = metrics.summarize(q_test[rows], c_test[rows], choices[:, rows])
                row[f"aiq {part}"] = round(got["aiq"], 4)
                row[f"quality@best-cost {part}"] = round(got["quality_at_best_cost"], 4)
            out["rows"].append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--routers", default="knn,linear,mlp")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [compare(p, args.routers.split(",")) for p in args.data]
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
