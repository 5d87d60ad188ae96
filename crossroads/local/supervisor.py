"""Restart local model servers that die while crossroads runs.

Requests already fall back to another model while a server is down (dispatch); the
supervisor brings the server back on the same port, so the gateway's upstream URL stays
valid and traffic returns once the endpoint's circuit closes. Restarts are budgeted: a
model that keeps crashing is left down, with the reason in the log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping

from crossroads.exceptions import LocalModelError
from crossroads.local.server import LocalModelServer

log = logging.getLogger("crossroads.local")


class Supervisor:
    """Watches ``servers`` from a daemon thread every ``interval`` seconds and restarts the
    dead ones, at most ``max_restarts`` per model within ``window_s`` seconds."""

    def __init__(
        self,
        servers: Mapping[str, LocalModelServer],
        *,
        interval: float = 1.0,
        max_restarts: int = 5,
        window_s: float = 300.0,
    ) -> None:
        self.servers = servers
        self.interval = interval
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.restarts: dict[str, int] = {name: 0 for name in servers}
        self._recent: dict[str, deque[float]] = {name: deque() for name in servers}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._watch, name="crossroads-local-supervisor", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching; waits up to ``timeout`` seconds for a restart in progress."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def check_once(self) -> list[str]:
        """Restart every dead server that has restarts left; returns the names restarted."""
        restarted = []
        for name, server in self.servers.items():
            if self._stopping.is_set():
                break
            if server.last_port is None or server.is_running():
                continue
            recent = self._recent[name]
            now = time.monotonic()
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if len(recent) >= self.max_restarts:
                continue  # crash loop: leave it down; fallback keeps serving
            recent.append(now)
            log.warning(
                "local model server %s died; restarting it on port %s", name, server.last_port
            )
            try:
                asyncio.run(server.restart())
            except LocalModelError as exc:
                log.error("could not restart local model server %s: %s", name, exc)
                continue
            self.restarts[name] += 1
            restarted.append(name)
        return restarted

    def _watch(self) -> None:
        while not self._stopping.wait(self.interval):
            self.check_once()
