"""The process's encoders for the request path: one loaded MiniLM, one micro-batcher per
event loop and window, one encode per text in flight.

Every user of prompt embeddings at serving time (the embedding signal, the learned signals,
the semantic cache, verifiers, learned routers) reads the same model: :class:`Embedder`
views of one model directory share one session (:func:`~crossroads.embeddings.embedder.load_model`).
:func:`request_vector` lets the signals of one request share one encode of its text.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import TYPE_CHECKING, Any

from crossroads.embeddings.embedder import DEFAULT_WINDOW, Embedder, forget_models
from crossroads.exceptions import ConfigError
from crossroads.types import EmbeddingWindow as Window

if TYPE_CHECKING:
    import numpy as np

    from crossroads.embeddings.batcher import MicroBatcher


def shared_embedder(window: Window = DEFAULT_WINDOW) -> Embedder:
    """The loaded MiniLM embedder reading ``window`` of long texts (exported once into the
    data dir); every window shares one model session."""
    return _shared_embedder(window)  # one cache key per window, however it is passed


@cache
def _shared_embedder(window: Window) -> Embedder:
    try:
        return Embedder(export_if_missing=True, window=window).load()
    except ImportError as exc:
        raise ConfigError(
            [
                (
                    "signals",
                    f"embedding signals need the ml extra: pip install 'crossroads[ml]' ({exc})",
                )
            ]
        ) from exc


_batchers: dict[tuple[int, str], MicroBatcher] = {}


def shared_batcher(window: Window = DEFAULT_WINDOW) -> MicroBatcher:
    """The micro-batcher of the running event loop for ``window``."""
    from crossroads.embeddings.batcher import MicroBatcher

    key = (id(asyncio.get_running_loop()), window)
    batcher = _batchers.get(key)
    if batcher is None:
        batcher = _batchers[key] = MicroBatcher(shared_embedder(window).encode)
    return batcher


_inflight: dict[tuple[int, str, str], asyncio.Future[Any]] = {}


async def request_vector(text: str, window: Window = DEFAULT_WINDOW) -> np.ndarray:
    """The embedding of ``text``; concurrent callers with the same text and window share one
    encode (the first asks the micro-batcher, the others wait for its answer)."""
    key = (id(asyncio.get_running_loop()), window, text)
    future = _inflight.get(key)
    if future is None:
        future = _inflight[key] = asyncio.ensure_future(shared_batcher(window).encode(text))
        future.add_done_callback(lambda _: _inflight.pop(key, None))
    # A caller that times out must not cancel the encode the others wait for.
    return await asyncio.shield(future)


def leave_vector(request: Any, text: str, window: Window, vector: np.ndarray) -> None:
    """Keep ``vector`` (of ``text`` in ``window``) on ``request`` when it is the default
    embedding of its prompt, so that selection reads it instead of embedding again."""
    if window == DEFAULT_WINDOW and text == request.prompt:
        request.vector = vector


def reset_shared() -> None:
    """Forget the shared embedders, batchers and loaded models (tests that change the data
    directory; the next use loads again)."""
    _shared_embedder.cache_clear()
    _batchers.clear()
    forget_models()
