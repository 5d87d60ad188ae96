"""The in-process cache store and the similarity index both stores use."""

from __future__ import annotations

import time

import numpy as np

from crossroads.plans.cache_store import Entry, MemoryCacheStore, VectorIndex, tenant_prefix


def unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_index_finds_the_nearest_through_growth_replacement_and_removal() -> None:
    rng = np.random.default_rng(0)
    vectors = unit(rng, 100)
    index = VectorIndex()
    for i, v in enumerate(vectors):
        index.add(f"k{i}", v)
    assert len(index) == 100  # grown past its first 16 rows
    for i in range(0, 100, 7):
        assert index.search(vectors[i]) == (f"k{i}", index.search(vectors[i])[1])
        assert abs(index.search(vectors[i])[1] - 1.0) < 1e-5
    index.add("k3", vectors[50])  # replaced, not added
    assert len(index) == 100
    for i in range(0, 100, 2):
        index.remove(f"k{i}")
    index.remove("absent")
    assert len(index) == 50
    for i in range(1, 100, 2):  # every survivor is still found, under its own key
        key, score = index.search(vectors[i] if i != 3 else vectors[50])
        assert key == f"k{i}" and score > 0.999
    for i in range(1, 100, 2):
        index.remove(f"k{i}")
    assert index.search(vectors[0]) == (None, 0.0)


async def test_the_memory_store_keeps_its_bounds_and_scopes() -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 5)
    store = MemoryCacheStore(ttl_s=60, max_entries=3)
    a, b = tenant_prefix("key:a") + "d", tenant_prefix("key:b") + "d"
    now = time.time()
    for i in range(4):
        await store.put(Entry(a, f"q{i}", "m", f"answer {i}", "stop", now, vectors[i]))
    assert await store.exact(a, "q0") is None  # the least recently used went
    found, score = await store.nearest(a, vectors[3], 0.9)
    assert found is not None and found.answer == "answer 3" and score > 0.999
    assert (await store.nearest(b, vectors[3], 0.9))[0] is None  # another tenant's scope
    found, _ = await store.nearest(a, vectors[0], 0.9)
    assert found is None  # evicted entries leave the index too
    store.entries_[(a, "q1")].created -= 120  # older than ttl_s
    assert await store.exact(a, "q1") is None
    assert (await store.nearest(a, vectors[1], 0.9))[0] is None
    await store.put(Entry(b, "q", "m", "b's", "stop", now, vectors[4]))
    assert await store.invalidate("key:a") == 2
    assert (await store.exact(b, "q")).answer == "b's"
