"""Fixtures of the signal tests: the real MiniLM encoder in a data dir of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def minilm(minilm_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The exported MiniLM is the shared encoder for this test."""
    from crossroads.embeddings.shared import reset_shared

    monkeypatch.setenv("CROSSROADS_DATA_DIR", str(minilm_data_dir))
    reset_shared()  # a batcher of an earlier test's loop holds the old encoder
    yield
    reset_shared()


def build(kind: str, **keys: Any) -> Any:
    """A prepared signal of ``kind`` from a config entry, as the pipeline builds it."""
    from crossroads.config import parse_config
    from crossroads.signals import build_signal

    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
            "models": [{"name": "a", "upstream": "u"}],
            "signals": [{"kind": kind, "name": "t", **keys}],
        }
    )
    return build_signal(cfg.signals[0])


def request(text: str, system: str | None = None) -> Any:
    """The routing request of one user message."""
    from crossroads.prompts import routing_request

    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}
    ]
    return routing_request({"model": "auto", "messages": messages})
