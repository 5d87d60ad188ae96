"""Circuit breakers and endpoint health shared by every replica through the state backend,
so that a failing endpoint opens once for the fleet, not once per worker.

Each worker keeps its own breakers (the request path never waits on the network) and a
background task synchronises them every ``state.sync_interval_s``:

* a breaker that opens here is published at once as a record (``<prefix>breaker:<endpoint>``)
  that lives ``open_s``; a worker that reads an open record it has not applied opens its
  breaker until the same moment, with the reason prefixed ``fleet:``;
* calls and failures (by category) are added to per-endpoint counters in buckets of the
  breaker's ``window_s``; when the fleet's calls in the window reach ``min_requests`` and
  fail at ``error_rate``, the breaker opens everywhere even if no worker saw enough alone.

If the backend is unavailable the breakers simply stay per worker until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections import Counter
from functools import partial
from typing import Any

import orjson

from crossroads.config import Config
from crossroads.dispatch.dispatcher import Dispatcher
from crossroads.dispatch.endpoints import EndpointState
from crossroads.exceptions import StateUnavailableError
from crossroads.state import GuardedState

log = logging.getLogger("crossroads.dispatch")
BUCKETS = 6  # health buckets per breaker window


class Fleet:
    """One per worker, started by the gateway when ``state.share_dispatch`` is on."""

    def __init__(
        self, dispatcher: Dispatcher, state: GuardedState, prefix: str, interval_s: float
    ) -> None:
        self.dispatcher = dispatcher
        self.state = state
        self.prefix = prefix
        self.interval_s = interval_s
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.syncs = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @classmethod
    def start_for(cls, config: Config, dispatcher: Dispatcher, state: GuardedState) -> Fleet | None:
        """The fleet sync of a gateway, started; None unless breakers are to be shared."""
        settings = config.state
        if settings is None or not settings.share_dispatch or state.backend.name == "memory":
            return None
        fleet = cls(dispatcher, state, settings.key_prefix, settings.sync_interval_s)
        fleet.start()
        return fleet

    def start(self) -> None:
        """Hook every breaker and start the sync task (on the running loop)."""
        breaker = self.dispatcher.config.dispatch.breaker
        self.bucket_s = max(1.0, breaker.window_s / BUCKETS)
        self.endpoints: list[EndpointState] = list(self.dispatcher.deployments_.values())
        self._calls = {e.key: e.served + e.failed for e in self.endpoints}
        self._failures: dict[str, Counter[str]] = {}
        self._opened: dict[str, dict[str, Any]] = {}  # published by this worker, pending
        self._applied: dict[str, float] = {}  # the "opened" time of each record applied here
        self._seen_failures: dict[str, int] = {}  # the fleet's failures in the window, last sync
        for e in self.endpoints:
            e.breaker.listener = self._listener(e)
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _listener(self, e: EndpointState) -> Any:
        def told(event: str, detail: str) -> None:
            if event == "failure":
                self._failures.setdefault(e.key, Counter())[detail] += 1
                return
            now = time.time()
            open_s = e.breaker.config.open_s
            self._opened[e.key] = {
                "opened": now,
                "until": now + open_s,
                "reason": detail,
                "by": self.worker,
            }
            if self._wake is not None:
                self._wake.set()

        return told

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync()
            except StateUnavailableError:
                pass  # breakers stay per worker until the backend answers again
            except Exception:  # a bug must not stop the loop
                log.exception("synchronising circuit breakers failed")

    async def sync(self) -> None:
        """Publish what opened here and this worker's calls; apply what the fleet says."""
        state, backend = self.state, self.state.backend
        now = time.time()
        opened, self._opened = self._opened, {}
        try:
            for key, record in opened.items():
                ttl = record["until"] - now
                if ttl > 0:
                    value = orjson.dumps(record).decode()
                    await state.call(partial(backend.put_record, self._record(key), value, ttl))
                    self._applied[key] = record["opened"]
        except StateUnavailableError:
            self._opened = {**opened, **self._opened}
            raise
        bucket = int(now // self.bucket_s)
        updates: dict[str, dict[str, int]] = {}
        for e in self.endpoints:
            calls = e.served + e.failed
            delta, self._calls[e.key] = calls - self._calls[e.key], calls
            failures = self._failures.pop(e.key, None)
            if delta or failures:
                fields = {"calls": delta}
                if failures:
                    fields["failures"] = sum(failures.values())
                    fields.update({f"f:{c}": n for c, n in failures.items()})
                updates[self._health(e.key, bucket)] = fields
        window = self.dispatcher.config.dispatch.breaker.window_s
        if updates:
            ttl = window + 2 * self.bucket_s
            await state.call(lambda: backend.add_counters(updates, ttl))
        records = await state.call(
            lambda: backend.get_records([self._record(e.key) for e in self.endpoints])
        )
        spans = range(bucket - math.ceil(window / self.bucket_s) + 1, bucket + 1)
        keys = [self._health(e.key, b) for e in self.endpoints for b in spans]
        counters = await state.call(lambda: backend.read_counters(keys))
        for i, e in enumerate(self.endpoints):
            self._apply_record(e, records[i], now)
            total: Counter[str] = Counter()
            for row in counters[i * len(spans) : (i + 1) * len(spans)]:
                total.update(row)
            self._apply_health(e, total, now)
        self.syncs += 1

    def _apply_record(self, e: EndpointState, raw: str | None, now: float) -> None:
        if raw is None:
            return
        record = orjson.loads(raw)
        if record.get("by") == self.worker or self._applied.get(e.key) == record["opened"]:
            return
        self._applied[e.key] = record["opened"]
        if e.breaker.state == "open":
            return
        reason = record["reason"]
        e.breaker.open_for(
            record["until"] - now, reason if reason.startswith("fleet") else f"fleet: {reason}"
        )

    def _apply_health(self, e: EndpointState, total: Counter[str], now: float) -> None:
        cfg = e.breaker.config
        calls, failures = total["calls"], total["failures"]
        fresh = failures > self._seen_failures.get(e.key, 0)  # like a local breaker: on a failure
        self._seen_failures[e.key] = failures
        if not fresh or e.breaker.state != "closed" or calls < cfg.min_requests:
            return
        if failures < cfg.error_rate * calls:
            return
        categories = "/".join(k[2:] for k, _ in total.most_common() if k.startswith("f:"))
        reason = f"fleet: {failures}/{calls} calls failed in {cfg.window_s:g} s: {categories}"
        e.breaker.open_for(cfg.open_s, reason)
        self._opened[e.key] = {
            "opened": now,
            "until": now + cfg.open_s,
            "reason": reason,
            "by": self.worker,
        }
        assert self._wake is not None
        self._wake.set()

    def _record(self, endpoint: str) -> str:
        return f"{self.prefix}breaker:{endpoint}"

    def _health(self, endpoint: str, bucket: int) -> str:
        return f"{self.prefix}health:{endpoint}:{bucket}"

    async def aclose(self) -> None:
        """Stop synchronising."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
