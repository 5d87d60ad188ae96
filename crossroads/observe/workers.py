"""One worker's metrics, and how several workers add theirs up.

With ``serve --workers N`` each worker aggregates its own requests in memory and, every
``metrics.flush_interval_s``, publishes a snapshot to ``$CROSSROADS_METRICS_DIR/worker-<pid>.json``
(written to a temporary file, then renamed: a reader never sees half of one). The worker
that answers ``GET /metrics`` merges its live state with every other worker's latest
snapshot, so the answer is whole whichever worker the scrape reaches; other workers' counts
are at most one interval old. ``serve`` makes the directory and removes it on exit; files of
workers that exited stay, so their counts stay in the totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import orjson

from crossroads.config import MetricsConfig
from crossroads.dispatch.dispatcher import Dispatcher
from crossroads.observe.exposition import merge, render
from crossroads.observe.metrics import BREAKER_STATES, RequestMetrics
from crossroads.store import TraceStore

log = logging.getLogger("crossroads.metrics")

DIR_ENV = "CROSSROADS_METRICS_DIR"
PREFIX = "worker-"


class SnapshotDir:
    """The directory where workers publish their snapshots."""

    def __init__(self, path: Path, pid: int) -> None:
        self.path = path
        self.pid = pid

    def write(self, snapshot: bytes) -> None:
        """Publish this worker's snapshot (atomically)."""
        final = self.path / f"{PREFIX}{self.pid}.json"
        tmp = final.with_suffix(".tmp")
        tmp.write_bytes(snapshot)
        os.replace(tmp, final)

    def others(self) -> list[dict[str, Any]]:
        """Every other worker's latest snapshot (unreadable ones are skipped and logged)."""
        out = []
        own = f"{PREFIX}{self.pid}.json"
        for entry in self.path.glob(f"{PREFIX}*.json"):
            if entry.name == own:
                continue
            try:
                out.append(orjson.loads(entry.read_bytes()))
            except (OSError, orjson.JSONDecodeError) as exc:
                log.warning("skipping metrics snapshot %s: %s", entry, exc)
        return out


def clear(path: Path) -> None:
    """Remove the snapshots of an earlier run (their counts are not this run's)."""
    for entry in path.glob(f"{PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


class WorkerMetrics:
    """The metrics of one gateway worker: request metrics from traces, live state of its
    endpoints and trace store, and (with a snapshot directory) the other workers'."""

    def __init__(
        self,
        config: MetricsConfig,
        names: frozenset[str],
        dispatcher: Dispatcher,
        store: TraceStore,
        directory: str | None = None,
    ) -> None:
        self.config = config
        self.requests = RequestMetrics(names, config.by_key)
        self.observe = self.requests.observe
        self.dispatcher = dispatcher
        self.store = store
        self.shared = SnapshotDir(Path(directory), os.getpid()) if directory else None
        self._publisher: asyncio.Task[None] | None = None

    @property
    def stale_s(self) -> float:
        """A snapshot older than this is from a worker that is gone or stuck: its gauges
        no longer count."""
        return max(3 * self.config.flush_interval_s, 5.0)

    def start(self) -> None:
        """Publish snapshots periodically (with a snapshot directory); needs the event loop."""
        if self.shared is not None and self._publisher is None:
            self.shared.write(self._encoded())  # at once: a scrape counts this worker
            self._publisher = asyncio.get_running_loop().create_task(self._publish())

    async def _publish(self) -> None:
        assert self.shared is not None
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                await asyncio.to_thread(self.shared.write, self._encoded())
            except OSError as exc:
                log.warning("cannot publish metrics to %s: %s", self.shared.path, exc)

    def close(self) -> None:
        """Stop publishing; publish the final counts."""
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        if self.shared is not None:
            try:
                self.shared.write(self._encoded())
            except OSError as exc:
                log.warning("cannot publish metrics to %s: %s", self.shared.path, exc)

    def _encoded(self) -> bytes:
        return orjson.dumps(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """This worker's snapshot, with its endpoints and trace writer read now."""
        in_flight: dict[tuple[str, ...], float] = {}
        circuit: dict[tuple[str, ...], float] = {}
        for endpoint in self.dispatcher.deployments_.values():
            in_flight[(endpoint.key,)] = endpoint.in_flight
            for state in BREAKER_STATES:
                circuit[(endpoint.key, state)] = int(endpoint.breaker.state == state)
        stats = self.store.stats()
        return self.requests.snapshot(
            {
                "crossroads_endpoint_in_flight": in_flight,
                "crossroads_endpoint_circuit": circuit,
                "crossroads_trace_queue_depth": {(): stats["queued"]},
                "crossroads_traces_written": {(): stats["written"]},
                "crossroads_traces_dropped": {
                    (reason,): n for reason, n in stats["dropped_by_reason"].items()
                },
            }
        )

    async def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The body and content type of ``GET /metrics``: every worker's metrics."""
        own = self.snapshot()
        shared = self.shared

        def build() -> tuple[bytes, str]:
            snapshots = [own, *(shared.others() if shared is not None else ())]
            return render(merge(snapshots, self.stale_s), accept)

        return await asyncio.to_thread(build)
