import asyncio

import numpy as np
import pytest

from crossroads.embeddings import HashingEmbedder
from crossroads.exceptions import ConfigError, NoCandidateError
from crossroads.routers import Outcomes, make, save
from crossroads.routers.serving import RouterService

TEXTS = [f"please write python code for task {i}" for i in range(40)] + [
    f"tell me a short poem about the sea {i}" for i in range(40)
]


@pytest.fixture
def artifact(tmp_path):
    # "big" is good at code, "small" at poems; big costs 10x.
    quality = np.array([[1.0, 0.0]] * 40 + [[0.0, 1.0]] * 40)
    cost = np.tile([10.0, 1.0], (80, 1))
    embedder = HashingEmbedder()
    router = make("knn", n_neighbors=5).fit(
        embedder.encode(TEXTS), Outcomes(["big-key", "small"], quality, cost)
    )
    return save(router, tmp_path / "knn.joblib", calibration={"lambda": 0.01})


def test_score_maps_names_and_chooses(artifact) -> None:
    service = RouterService(artifact, model_map={"big-key": "big"}, embedder=HashingEmbedder())
    assert service.load() is service
    assert service.models == ["big", "small"]
    code, poem = service.score(
        ["write python code for task 3", "a poem about the sea"], ["big", "small", "other"]
    )
    assert code.model == "big" and poem.model == "small"
    assert code.objective == {"lambda": 0.01}  # calibrated default
    assert set(code.quality) == {"big", "small"} and code.unscored == ["other"]
    assert code.cost["big"] == pytest.approx(10.0)


def test_objective_override_and_candidates(artifact) -> None:
    cheap = RouterService(artifact, objective={"lambda": 1.0}, embedder=HashingEmbedder())
    assert cheap.score(["write python code"], ["big-key", "small"])[0].model == "small"
    only_big = RouterService(
        artifact, objective={"quality_target": 0.5}, embedder=HashingEmbedder()
    )
    assert only_big.score(["a poem about the sea"], ["big-key"])[0].model == "big-key"


def test_async_score(artifact) -> None:
    service = RouterService(artifact, embedder=HashingEmbedder())
    (decision,) = asyncio.run(service.ascore(["write python code"], ["big-key", "small"]))
    assert decision.model == "big-key"


def test_errors_name_what_to_fix(artifact, tmp_path) -> None:
    with pytest.raises(NoCandidateError, match="model_map"):
        RouterService(artifact, embedder=HashingEmbedder()).score(["x"], ["gpt-9"])
    with pytest.raises(ConfigError, match="not models of"):
        RouterService(artifact, model_map={"nope": "x"}, embedder=HashingEmbedder()).load()
    with pytest.raises(ConfigError, match="lambda: float"):
        RouterService(artifact, objective={"beta": 1.0}, embedder=HashingEmbedder()).load()
    from crossroads.exceptions import CrossroadsError

    with pytest.raises(CrossroadsError, match="crossroads fit"):
        RouterService(tmp_path / "missing.joblib").load()


def test_router_selector_picks_a_candidate(artifact) -> None:
    from types import SimpleNamespace

    from crossroads.routers.serving import RouterSelector
    from crossroads.types import Candidate, RoutingRequest

    config = SimpleNamespace(router=artifact, objective=None, model_map={"big-key": "big"})
    selector = RouterSelector(config)
    selector.service.embedder = HashingEmbedder()
    request = RoutingRequest(text="x", last_user_text="write python code for task 1")
    candidates = [Candidate("big"), Candidate("small"), Candidate("elsewhere")]
    chosen = asyncio.run(selector.aselect(request, candidates))
    assert chosen.model == "big"
    assert candidates[0].score is not None and candidates[2].score is None
    request.last_user_text = "a poem about the sea"
    assert selector.select(request, candidates).model == "small"


def test_a_router_on_the_default_embedding_scores_the_request_vector(tmp_path) -> None:
    """The vector a signal computed is scored as it is: the prompt is not embedded again,
    and the choice is the one a fresh embedding gives."""
    from types import SimpleNamespace

    from crossroads.embeddings import Embedder
    from crossroads.embeddings.shared import request_vector
    from crossroads.routers.serving import RouterSelector
    from crossroads.types import Candidate, RoutingRequest

    embedder = Embedder()
    quality = np.array([[1.0, 0.0]] * 40 + [[0.0, 1.0]] * 40)
    router = make("knn", n_neighbors=5).fit(
        embedder.encode(TEXTS), Outcomes(["big", "small"], quality, np.tile([10.0, 1.0], (80, 1)))
    )
    path = save(
        router,
        tmp_path / "minilm-knn.joblib",
        calibration={"lambda": 0.01},
        meta={"window": "head_tail"},
    )
    selector = RouterSelector(SimpleNamespace(router=path, objective=None, model_map=None))
    service = selector.service.load()
    assert service.reads_request_vector_

    def no_encode(texts: list[str]) -> np.ndarray:
        raise AssertionError("the prompt was embedded again")

    async def choose(text: str, with_vector: bool) -> str:
        request = RoutingRequest(text=text, last_user_text=text)
        if with_vector:
            request.vector = await request_vector(text)  # what a signal leaves
        return (await selector.aselect(request, [Candidate("big"), Candidate("small")])).model

    async def run() -> list[str]:
        fresh = [await choose(t, False) for t in ("write python code for task 3", "a sea poem")]
        service.embedder_.encode = no_encode
        return fresh + [
            await choose(t, True) for t in ("write python code for task 3", "a sea poem")
        ]

    assert asyncio.run(run()) == ["big", "small", "big", "small"]


def test_a_router_on_another_embedding_embeds_the_prompt_itself(artifact) -> None:
    service = RouterService(artifact, embedder=HashingEmbedder()).load()
    assert not service.reads_request_vector_
