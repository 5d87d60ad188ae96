"""What a shadow router (``selection.shadow``) adds to the served path: the routing time of a
``router`` decision alone and with a shadow, on the same prompts, in one process.

    python -m bench.shadow --data ../shared/data/routellm-evals [--requests 300]

Two kNN routers are fitted on the dataset's train split (cached MiniLM embeddings): the
served one (k=40) and a candidate (k=10). Requests are the test split's prompts, each
distinct, sent one at a time through ``Pipeline.route`` (signals, decision, selection,
shadow), alternating the two pipelines so that machine load hits both alike. Prints the
median and 90th percentile of the routing time per request, and the shadow's own time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _artifacts(data: Path, out: Path) -> tuple[Path, Path, list[str], list[str]]:
    from crossroads.eval.datasets import features_for, load_dataset, split_indices
    from crossroads.routers import make, save

    ds = load_dataset(data)
    features, _ = features_for(ds)
    split = split_indices(ds, seed=0)
    train = split["train"]
    paths = []
    for name, k in (("served", 40), ("candidate", 10)):
        router = make("knn", n_neighbors=k).fit(features[train], ds.outcomes.subset(train))
        meta = {"features": "minilm-embedding", "dataset": ds.name}
        paths.append(Path(save(router, out / f"{name}.joblib", name="knn", meta=meta)))
    assert ds.prompts is not None
    test = [ds.prompts[i] for i in split["test"]]
    return paths[0], paths[1], test, list(ds.outcomes.models)


def _pipeline(served: Path, shadow: Path | None, models: list[str]) -> Any:
    from crossroads.config import parse_config
    from crossroads.pipeline import Pipeline

    selection: dict[str, Any] = {"method": "router", "router": str(served)}
    if shadow is not None:
        selection["shadow"] = str(shadow)
    config = parse_config(
        {
            "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
            "models": [{"name": m, "upstream": "u"} for m in models],
            "default": {"models": models, "selection": selection},
        }
    )
    return Pipeline(config).prepare()


async def _measure(requests: int, data: Path) -> dict[str, Any]:
    from crossroads.prompts import routing_request

    with tempfile.TemporaryDirectory() as tmp:
        served, candidate, prompts, models = _artifacts(data, Path(tmp))
        alone = _pipeline(served, None, models)
        shadowed = _pipeline(served, candidate, models)
        timings: dict[str, list[float]] = {"served only": [], "served + shadow": []}
        shadow_ms: list[float] = []
        for i, text in enumerate(prompts[: requests + 20]):
            body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
            for name, pipeline in (("served only", alone), ("served + shadow", shadowed))[
                :: 1 if i % 2 else -1
            ]:
                start = time.perf_counter()
                route = await pipeline.route(routing_request(body), "auto")
                elapsed = (time.perf_counter() - start) * 1000
                if i >= 20:  # warm-up
                    timings[name].append(elapsed)
                    if route.shadow is not None:
                        shadow_ms.append(route.shadow.elapsed_ms)
    out: dict[str, Any] = {}
    for name, values in timings.items():
        values.sort()
        out[name] = {
            "p50_ms": round(statistics.median(values), 3),
            "p90_ms": round(values[int(0.9 * len(values))], 3),
        }
    shadow_ms.sort()
    out["shadow's own compute"] = {
        "p50_ms": round(statistics.median(shadow_ms), 3),
        "p90_ms": round(shadow_ms[int(0.9 * len(shadow_ms))], 3),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--data", type=Path, required=True, help="a dataset with prompt text")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_measure(args.requests, args.data)), indent=2))


if __name__ == "__main__":
    main()
