"""Settlements written off the request path, in batches, retried while the backend is down.

A settlement only ever lowers what a budget holds, so writing it a moment later never lets a
budget be overspent; what matters is that it is not lost. Settlements wait in a bounded
queue (``state.max_pending_settlements``; beyond it they are dropped and counted), are
written together (those of the same 50 ms in one round trip, at most one write per 50 ms
below 256 a batch), and on a failure wait for the backend's back-off and are tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from functools import partial
from typing import Any

from crossroads.exceptions import StateUnavailableError
from crossroads.state.base import GuardedState, Settlement

log = logging.getLogger("crossroads.state")
BATCH = 256
LINGER_S = 0.05


class Settler:
    """One per worker; :meth:`put` never blocks nor raises."""

    def __init__(self, state: GuardedState, max_pending: int) -> None:
        self.state = state
        self.max_pending = max_pending
        self.written = 0
        self.dropped = 0
        self._queue: deque[Settlement] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    def put(self, settlement: Settlement) -> None:
        """Queue one settlement (called on the event loop)."""
        if len(self._queue) >= self.max_pending:
            self.dropped += 1
            return
        self._queue.append(settlement)
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._wake is not None
        self._wake.set()

    @property
    def pending(self) -> int:
        """Settlements not written yet."""
        return len(self._queue) + (1 if self._busy else 0)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            # Fewer than a batch: let more arrive, one round trip for many. After every
            # write too: under steady traffic a settlement is always queued by the time a
            # write ends, and writing it at once would cost a round trip per request.
            if len(self._queue) < BATCH:
                await asyncio.sleep(LINGER_S)
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            self._busy = True
            failed = False
            try:
                await self.state.call(partial(self.state.backend.settle, batch, time.time()))
                self.written += len(batch)
            except StateUnavailableError:
                self._queue.extendleft(reversed(batch))
                failed = True
            except Exception:  # a bug must not lose the loop; the batch is dropped
                log.exception("settling %d reservations failed", len(batch))
                self.dropped += len(batch)
            finally:
                self._busy = False
            if failed:
                await asyncio.sleep(max(0.05, self.state.retry_in()))

    async def drain(self, timeout_s: float) -> None:
        """Write what is queued for at most ``timeout_s``, then stop; what is left is
        dropped and counted."""
        deadline = time.monotonic() + timeout_s
        while (self._queue or self._busy) and time.monotonic() < deadline:
            if not self._busy and time.monotonic() + self.state.retry_in() >= deadline:
                break  # the backend is down past the deadline: waiting only delays shutdown
            await asyncio.sleep(0.02)
        if self._queue:
            self.dropped += len(self._queue)
            log.warning("%d settlements not written at shutdown", len(self._queue))
            self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def stats(self) -> dict[str, Any]:
        """Queued, written and dropped settlements since start."""
        return {"pending": self.pending, "written": self.written, "dropped": self.dropped}
