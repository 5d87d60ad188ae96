"""How many MiniLM sessions a gateway policy loads, and the RSS they take.

A policy with an ``embedding`` signal, the four learned signals and a learned router
(``selection: {method: router}``) is built as the gateway builds it; onnxruntime sessions
are counted as they are created. Only public APIs are used, so the same script measures an
older checkout (``PYTHONPATH=<checkout> python bench/encoder_sharing.py``) for comparison.
Then one short prompt is routed, so the numbers include a request's work.

    python -m bench.encoder_sharing
"""

from __future__ import annotations

import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _policy(artifact: Path) -> dict[str, Any]:
    return {
        "upstreams": [{"name": "u", "kind": "mock"}],
        "models": [{"name": "big", "upstream": "u"}, {"name": "small", "upstream": "u"}],
        "signals": [
            {"kind": "embedding", "name": "math", "exemplars": ["solve for x", "integrate"]},
            {"kind": "domain", "name": "code", "labels": ["code"]},
            {"kind": "complexity", "name": "hard"},
            {"kind": "jailbreak", "name": "attack"},
            {"kind": "ood", "name": "unknown"},
        ],
        "decisions": [
            {"name": "refuse", "when": "jailbreak:attack", "priority": 9, "models": ["small"]},
            {"name": "scope", "when": "ood:unknown", "priority": 8, "models": ["small"]},
            {
                "name": "learned",
                "when": {"any": ["embedding:math", "domain:code", "complexity:hard"]},
                "models": ["big", "small"],
                "selection": {"method": "router", "router": str(artifact)},
            },
        ],
        "default": {"models": ["small"]},
    }


def measure() -> dict[str, Any]:
    """Sessions created, RSS before/after building, time to build, one routed request."""
    import numpy as np
    import onnxruntime as ort

    from crossroads.config import parse_config
    from crossroads.pipeline import Pipeline
    from crossroads.prompts import routing_request
    from crossroads.routers import Outcomes, make, save

    created: list[str] = []
    real = ort.InferenceSession.__init__

    def counting(self: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        created.append(str(path))
        real(self, path, *args, **kwargs)

    ort.InferenceSession.__init__ = counting  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    router = make("knn", n_neighbors=5).fit(
        rng.normal(size=(200, 384)).astype(np.float32),
        Outcomes(["big", "small"], rng.uniform(size=(200, 2))),
    )
    with tempfile.TemporaryDirectory() as tmp:
        artifact = save(router, Path(tmp) / "knn.joblib", meta={"features": "minilm-embedding"})
        rss0, t0 = _rss_mb(), time.perf_counter()
        pipeline = Pipeline(parse_config(_policy(artifact))).prepare()
        build_s, rss1 = time.perf_counter() - t0, _rss_mb()
        request = routing_request(
            {"model": "auto", "messages": [{"role": "user", "content": "write a python sort"}]}
        )
        route = asyncio.run(pipeline.route(request, "auto"))
    return {
        "sessions_created": len(created),
        "rss_mb_before_build": round(rss0, 1),
        "rss_mb_built": round(rss1, 1),
        "rss_mb_after_one_request": round(_rss_mb(), 1),
        "build_s": round(build_s, 2),
        "decision": route.decision,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
