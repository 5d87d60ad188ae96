"""Adaptive micro-batching of embeddings for the request path.

When the encoder is idle a text is encoded at once (no added wait); while it is busy,
texts from concurrent requests queue and go together as the next batch. One batch runs at
a time in a worker thread, so the event loop never blocks and a burst costs a few batched
calls instead of one call per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class MicroBatcher:
    """``await batcher.encode(text)`` → one vector; ``encode_many`` is the batched function
    (e.g. :meth:`Embedder.encode`). Bind one batcher to one event loop."""

    def __init__(self, encode_many: Callable[[list[str]], Any], max_batch: int = 64) -> None:
        self.encode_many = encode_many
        self.max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[Any]]] = []
        self._busy = False
        self.batches = 0  # how many calls of encode_many so far (for tests and metrics)

    async def encode(self, text: str) -> Any:
        """The vector of ``text``, computed in a batch with concurrent callers."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if not self._busy:
            self._start()
        return await future

    def _start(self) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._busy = True
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[str, asyncio.Future[Any]]]) -> None:
        try:
            vectors = await asyncio.to_thread(self.encode_many, [t for t, _ in batch])
        except BaseException as exc:  # every waiter learns of it; none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError(str(exc))
                    )
        else:
            self.batches += 1
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)
        finally:
            self._busy = False
            if self._pending:
                self._start()
