"""A decision whose selection is a learned router artifact, served by the gateway, with the
real MiniLM embedder (exported once per session; skipped where the export extra is absent)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from crossroads.gateway import create_app
from crossroads.store.memory import MemoryTraceStore
from tests.conftest import routing_config
from tests.support.fake_upstream import FakeUpstream

CODE = [
    f"please write python code that {t}"
    for t in (
        "sorts a list",
        "parses json",
        "reads a csv file",
        "merges two dicts",
        "counts words",
        "reverses a string",
        "finds primes",
        "zips two lists",
    )
]
POEMS = [
    f"write a short poem about {t}"
    for t in (
        "the sea",
        "autumn leaves",
        "a quiet night",
        "mountains",
        "the moon",
        "rain",
        "a lighthouse",
        "old friends",
    )
]


@pytest.fixture
def artifact(minilm_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(minilm_data_dir))
    from crossroads.embeddings import Embedder
    from crossroads.routers import Outcomes, make, save

    texts = CODE + POEMS
    quality = np.array([[1.0, 0.2]] * len(CODE) + [[0.6, 0.6]] * len(POEMS))  # big-key, small
    cost = np.tile([10.0, 1.0], (len(texts), 1))
    embedder = Embedder().load()
    router = make("knn", n_neighbors=3).fit(
        embedder.encode(texts), Outcomes(["big-key", "small"], quality, cost)
    )
    return Path(save(router, tmp_path / "knn.joblib", calibration={"lambda": 0.03}))


async def test_learned_router_chooses_per_prompt_and_is_traced(
    artifact: Path, fake_upstream: FakeUpstream
) -> None:
    cfg = routing_config(
        fake_upstream.base_url,
        signals=[],
        decisions=[],
        default={
            "models": ["big", "small"],
            "selection": {
                "method": "router",
                "router": str(artifact),
                "model_map": {"big-key": "big"},
            },
        },
    )
    store = MemoryTraceStore()
    app = create_app(cfg, store=store)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        code = await client.post(
            "/v1/chat/completions",
            json={
                "model": "auto",
                "messages": [
                    {"role": "user", "content": "write python code to sort a dictionary by value"}
                ],
            },
        )
        poem = await client.post(
            "/v1/chat/completions",
            json={
                "model": "auto",
                "messages": [{"role": "user", "content": "write a short poem about the ocean"}],
            },
        )
    await app.shutdown()
    assert code.status_code == poem.status_code == 200
    assert code.headers["x-crossroads-model"] == "big"
    assert poem.headers["x-crossroads-model"] == "small"  # as good for poems, 10x cheaper
    route = store.get(code.headers["x-crossroads-trace-id"])["route"]
    assert route["selection"] == "router"
    scores = {c["model"]: c["score"] for c in route["candidates"]}
    assert scores["big"] > scores["small"]


def test_validate_reports_a_bad_objective() -> None:
    from crossroads.config import parse_config
    from crossroads.exceptions import ConfigError

    with pytest.raises(ConfigError, match="exactly one of"):
        parse_config(
            {
                "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
                "models": [{"name": "a", "upstream": "u"}],
                "default": {
                    "models": ["a"],
                    "selection": {
                        "method": "router",
                        "router": "x.joblib",
                        "objective": {"lambda": 1, "quality_target": 0.9},
                    },
                },
            }
        )
