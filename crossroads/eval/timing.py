"""Timing targets of routers: fit on ``n`` prompts (features given, i.e. embeddings cached)
and predict one prompt after its embedding.

    python -m crossroads.eval.timing ../shared/data/routerdc-7model [knn,bt,...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from crossroads.routers.base import Outcomes
from crossroads.routers.registry import make


def time_routers(
    features: np.ndarray,
    outcomes: Outcomes,
    routers: list[str],
    *,
    n: int = 20000,
    calls: int = 500,
) -> list[dict[str, Any]]:
    """Per router: seconds to fit on ``n`` rows (rows repeated if fewer) and the median and
    90th-percentile milliseconds of ``predict`` on one prompt over ``calls`` calls."""
    rows = np.resize(np.arange(len(features)), n)
    x, sub = features[rows], outcomes.subset(rows)
    found = []
    for name in routers:
        started = time.perf_counter()
        router = make(name).fit(x, sub)
        fit_s = time.perf_counter() - started
        one = features[:1]
        router.predict(one)
        times = []
        for i in range(calls):
            q = features[i % len(features) : i % len(features) + 1]
            t0 = time.perf_counter()
            router.predict(q)
            times.append(time.perf_counter() - t0)
        ms = 1000 * np.asarray(times)
        found.append(
            {
                "router": name,
                "n": n,
                "fit_s": fit_s,
                "predict_ms": float(np.median(ms)),
                "predict_ms_p90": float(np.percentile(ms, 90)),
            }
        )
    return found


def main(argv: list[str] | None = None) -> None:
    """Print the timing table of the default routers (or those named, comma-separated, in a
    second argument) on one dataset."""
    from crossroads.eval.datasets import features_for, load_dataset
    from crossroads.eval.runner import DEFAULT_ROUTERS

    args = sys.argv[1:] if argv is None else argv
    ds = load_dataset(Path(args[0]))
    features, _ = features_for(ds, progress=True)
    names = args[1].split(",") if len(args) > 1 else list(DEFAULT_ROUTERS)
    print("| router | fit s (20k prompts) | predict ms, median (1 prompt) | p90 |")
    print("|---|---|---|---|")
    for row in time_routers(features, ds.outcomes, names):
        print(
            f"| {row['router']} | {row['fit_s']:.2f} | {row['predict_ms']:.3f} "
            f"| {row['predict_ms_p90']:.3f} |"
        )


if __name__ == "__main__":
    main()
