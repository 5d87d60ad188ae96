"""One encoder per process, and the windows it reads of long texts."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from crossroads.embeddings import Embedder, EmbeddingCache, HashingEmbedder
from crossroads.embeddings.embedder import clip_text, sessions_built, window_ids

CLS, SEP = 101, 102


def ids(n: int) -> list[int]:
    """``[CLS] 1 2 ... n [SEP]``."""
    return [CLS, *range(1, n + 1), SEP]


def test_a_text_that_fits_is_read_whole_by_every_window() -> None:
    for window in ("head", "tail", "head_tail"):
        assert window_ids(ids(6), 8, window, 3) == ids(6)


def test_windows_keep_cls_and_sep_and_the_length() -> None:
    long = ids(20)
    assert window_ids(long, 8, "head", 3) == [CLS, 1, 2, 3, 4, 5, 6, SEP]
    assert window_ids(long, 8, "tail", 3) == [CLS, 15, 16, 17, 18, 19, 20, SEP]
    # head_tail: [CLS] and the first two tokens, then the last four and [SEP].
    assert window_ids(long, 8, "head_tail", 3) == [CLS, 1, 2, 17, 18, 19, 20, SEP]


def test_clipping_keeps_the_ends_a_window_reads() -> None:
    text = "A" * 5000 + "MIDDLE" + "Z" * 5000
    assert clip_text("short", 256, "head_tail") == "short"
    head_tail = clip_text(text, 100, "head_tail")
    assert head_tail.startswith("A" * 1600) and head_tail.endswith("Z" * 1600)
    assert "MIDDLE" not in head_tail
    assert clip_text(text, 100, "head") == "A" * 1600
    assert clip_text(text, 100, "tail") == "Z" * 1600


def test_artifacts_pickled_before_windows_read_the_head() -> None:
    old = Embedder()
    state = old.__getstate__()
    del state["window"], state["head_tokens"]
    restored = Embedder.__new__(Embedder)
    restored.__setstate__(state)
    assert restored.window == "head" and restored.window_tag == "head256"
    assert pickle.loads(pickle.dumps(Embedder(window="tail"))).window == "tail"


def test_an_unknown_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="window must be one of head, tail, head_tail"):
        Embedder(tmp_path, window="middle").load()  # type: ignore[arg-type]


class WindowedHashing(HashingEmbedder):
    """A hashing embedder that says texts under 20 characters fit its window."""

    window_tag = "ht64-192"

    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[str] = []

    def fits(self, texts: list[str]) -> list[bool]:
        return [len(t) < 20 for t in texts]

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        self.encoded.extend(texts)
        return super().encode(texts)


def test_a_windowed_cache_embeds_again_only_the_texts_that_do_not_fit(tmp_path: Path) -> None:
    texts = ["short one", "short two", "a much longer text than the window"]
    head = EmbeddingCache("ds", HashingEmbedder(), root=tmp_path)
    head_vectors = head.encode(texts)
    assert head.path.name == "ds.all-MiniLM-L6-v2.npz"
    embedder = WindowedHashing()
    windowed = EmbeddingCache("ds", embedder, root=tmp_path)
    assert windowed.path.name == "ds.all-MiniLM-L6-v2.ht64-192.npz"
    vectors = windowed.encode(texts)
    assert embedder.encoded == [texts[2]]  # the short ones came from the head file
    np.testing.assert_allclose(vectors, head_vectors)
    assert EmbeddingCache("ds", embedder, root=tmp_path).encode(texts[::-1]).shape == (3, 256)
    assert embedder.encoded == [texts[2]]  # now all in its own file


def test_the_window_reads_the_question_at_the_end_of_a_long_prompt(minilm_data_dir: Path) -> None:
    model = minilm_data_dir / "models" / "all-MiniLM-L6-v2"
    question = "What is the boiling point of water at sea level?"
    shots = "Example: what is two plus two? Answer: four. " * 120
    prompt = f"{shots}Now the question. {question}"
    head = Embedder(model, window="head").encode([prompt, question])
    head_tail = Embedder(model, window="head_tail").encode([prompt, question])
    assert float(head_tail[0] @ head_tail[1]) > float(head[0] @ head[1]) + 0.2


async def test_one_encoder_session_serves_signals_routers_and_heads(
    minilm_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossroads.config import parse_config
    from crossroads.embeddings.shared import reset_shared
    from crossroads.pipeline import Pipeline
    from crossroads.prompts import routing_request
    from crossroads.routers import Outcomes, make, save

    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(minilm_data_dir))
    reset_shared()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 384)).astype(np.float32)
    quality = rng.uniform(size=(30, 2))
    router = make("knn", n_neighbors=3).fit(features, Outcomes(["big", "small"], quality))
    artifact = save(
        router, tmp_path / "knn.joblib", meta={"features": "minilm-embedding", "window": "head"}
    )
    config = parse_config(
        {
            "upstreams": [{"name": "u", "kind": "mock"}],
            "models": [{"name": "big", "upstream": "u"}, {"name": "small", "upstream": "u"}],
            "signals": [
                {"kind": "embedding", "name": "math", "exemplars": ["solve for x"]},
                {"kind": "domain", "name": "code", "labels": ["code"]},
                {"kind": "jailbreak", "name": "attack", "window": "tail"},
            ],
            "decisions": [
                {
                    "name": "learned",
                    "when": {"any": ["embedding:math", "domain:code", "jailbreak:attack"]},
                    "models": ["big", "small"],
                    "selection": {"method": "router", "router": str(artifact)},
                }
            ],
            "default": {"models": ["small"]},
        }
    )
    before = sessions_built()
    pipeline = Pipeline(config).prepare()
    request = routing_request(
        {"model": "auto", "messages": [{"role": "user", "content": "write a python sort"}]}
    )
    route = await pipeline.route(request, "auto")
    assert route.decision == "learned" and route.model in {"big", "small"}
    assert {"embedding:math", "domain:code", "jailbreak:attack"} <= set(route.signals)
    # Three signals over two windows and a router reading the head: one model loaded.
    assert sessions_built() - before == 1
    reset_shared()


def test_a_router_reads_prompts_with_the_window_it_was_fitted_with(
    minilm_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossroads.routers import Outcomes, make, save
    from crossroads.routers.serving import RouterService

    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(minilm_data_dir))
    rng = np.random.default_rng(0)
    router = make("knn", n_neighbors=3).fit(
        rng.normal(size=(10, 384)).astype(np.float32),
        Outcomes(["a", "b"], rng.uniform(size=(10, 2))),
    )
    windows = {}
    for name, meta in {
        "tail": {"features": "minilm-embedding", "window": "tail"},
        "old": {"features": "minilm-embedding"},  # fitted before windows existed
    }.items():
        artifact = save(router, tmp_path / f"{name}.joblib", meta=meta)
        windows[name] = RouterService(artifact).load().embedder_.window
    assert windows == {"tail": "tail", "old": "head"}
