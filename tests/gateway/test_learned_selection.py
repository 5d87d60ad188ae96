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


def mean_artifact(path: Path, small: float, big: float) -> Path:
    """A prompt-free router that predicts these qualities (keys big-key, small)."""
    from crossroads.routers import Outcomes, make, save

    quality = np.array([[big, small]] * 4)
    router = make("mean").fit(
        np.zeros((4, 1), dtype=np.float32),
        Outcomes(["big-key", "small"], quality, np.tile([10.0, 1.0], (4, 1))),
    )
    return Path(save(router, path, calibration={"lambda": 0.0}))


async def test_a_shadow_router_is_traced_and_never_served(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    import openai

    live = mean_artifact(tmp_path / "live.joblib", small=0.9, big=0.5)
    candidate = tmp_path / "candidate.joblib"
    mean_artifact(tmp_path / "cand-v1.joblib", small=0.2, big=0.8)
    candidate.symlink_to(tmp_path / "cand-v1.joblib")  # traced as the file it points to
    selection = {
        "method": "router",
        "router": str(live),
        "shadow": str(candidate),
        "model_map": {"big-key": "big"},
    }
    cfg = routing_config(
        fake_upstream.base_url,
        signals=[],
        decisions=[],
        default={"models": ["big", "small"], "selection": selection},
    )
    store = MemoryTraceStore()
    app = create_app(cfg, store=store)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as http:
        client = openai.AsyncOpenAI(base_url="http://gw/v1", api_key="-", http_client=http)
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
    await app.shutdown()
    assert raw.headers["x-crossroads-model"] == "small"  # the live router's choice
    route = store.get(raw.headers["x-crossroads-trace-id"])["route"]
    assert route["propensity"] == 1.0
    shadow = route["shadow"]
    assert (shadow["model"], shadow["estimated_cost"], shadow["error"]) == ("big", 10.0, None)
    assert shadow["artifact"] == str((tmp_path / "cand-v1.joblib").resolve())
    assert shadow["quality"] == pytest.approx(0.8)


async def test_a_failing_shadow_is_recorded_and_the_request_served(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    from crossroads.routers import Outcomes, make, save

    live = mean_artifact(tmp_path / "live.joblib", small=0.9, big=0.5)
    other = make("mean").fit(
        np.zeros((2, 1), dtype=np.float32), Outcomes(["x", "y"], np.ones((2, 2)))
    )
    stranger = save(other, tmp_path / "stranger.joblib")  # knows none of the candidates
    selection = {"method": "router", "router": str(live), "shadow": str(stranger)}
    cfg = routing_config(
        fake_upstream.base_url,
        signals=[],
        decisions=[],
        default={"models": ["big-key", "small"], "selection": selection},
        models=[
            {"name": "big-key", "upstream": "fake", "upstream_model": "b"},
            {"name": "small", "upstream": "fake", "upstream_model": "s"},
        ],
    )
    store = MemoryTraceStore()
    app = create_app(cfg, store=store)
    await app.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
    await app.shutdown()
    assert response.status_code == 200
    shadow = store.get(response.headers["x-crossroads-trace-id"])["route"]["shadow"]
    assert shadow["model"] == "" and "NoCandidateError" in shadow["error"]


async def test_a_shadow_shares_the_served_routers_embedding(
    artifact: Path, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    import shutil

    shadow_path = tmp_path / "shadow.joblib"
    shutil.copy(artifact, shadow_path)
    selection = {
        "method": "router",
        "router": str(artifact),
        "shadow": str(shadow_path),
        "model_map": {"big-key": "big"},
    }
    cfg = routing_config(
        fake_upstream.base_url,
        signals=[],
        decisions=[],
        default={"models": ["big", "small"], "selection": selection},
    )
    store = MemoryTraceStore()
    app = create_app(cfg, store=store)
    await app.startup()
    selector = app.pipeline.selectors("default")[0]
    assert selector._shadow.embedder_ is selector.service.embedder_  # one model, loaded once
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        code = await client.post(
            "/v1/chat/completions",
            json={
                "model": "auto",
                "messages": [{"role": "user", "content": "write python code to parse json"}],
            },
        )
    await app.shutdown()
    route = store.get(code.headers["x-crossroads-trace-id"])["route"]
    assert route["model"] == route["shadow"]["model"] == "big"  # the same router, twice
    assert route["shadow"]["error"] is None and route["shadow"]["elapsed_ms"] > 0


async def test_with_a_shadow_the_request_vector_is_scored_and_not_embedded_again(
    minilm_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from crossroads.embeddings import Embedder
    from crossroads.routers import Outcomes, make, save
    from crossroads.selection import LearnedSelector
    from crossroads.types import Candidate, RoutingRequest

    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(minilm_data_dir))
    embedder = Embedder().load()
    texts = CODE + POEMS
    features = embedder.encode(texts)
    cost = np.tile([10.0, 1.0], (len(texts), 1))
    paths = []
    for name, quality in (
        ("live", [[1.0, 0.2]] * len(CODE) + [[0.6, 0.6]] * len(POEMS)),
        ("shadow", [[0.2, 1.0]] * len(CODE) + [[1.0, 0.2]] * len(POEMS)),
    ):
        router = make("knn", n_neighbors=3).fit(
            features, Outcomes(["big", "small"], np.array(quality), cost)
        )
        paths.append(
            save(
                router,
                tmp_path / f"{name}.joblib",
                calibration={"lambda": 0.03},
                meta={"window": "head_tail"},
            )
        )
    config = SimpleNamespace(router=paths[0], shadow=paths[1], objective=None, model_map=None)
    selector = LearnedSelector(config)
    selector.prepare()
    prompt = CODE[0]

    async def choose(vector: object) -> tuple[str, str]:
        request = RoutingRequest(text=prompt, last_user_text=prompt)
        request.vector = vector
        chosen = await selector.aselect(request, [Candidate("big"), Candidate("small")])
        shadow = selector.take_shadow(request)
        assert shadow is not None
        return chosen.model, shadow.model

    fresh = await choose(None)
    vector = embedder.encode([prompt])[0]

    def no_encode(texts: list[str]) -> np.ndarray:
        raise AssertionError("the prompt was embedded again")

    monkeypatch.setattr(selector.service.embedder_, "encode", no_encode)
    assert await choose(vector) == fresh == ("big", "small")
