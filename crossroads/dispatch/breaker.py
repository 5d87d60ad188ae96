"""A circuit breaker per endpoint: consecutive failures or an error rate over a window open it;
after ``open_s`` a few probes are let through (half-open); a success closes it again.

Its ``reason`` is shown to every client (503 bodies, ``GET /v1/crossroads/endpoints``), so it
names failure categories (``5 consecutive failures: timeout/http_503``), never the text of a
request's error: that could quote another client's data or the upstream's words.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Literal

from crossroads.config import BreakerConfig

State = Literal["closed", "open", "half_open"]
CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,31}")  # what failure_category returns


def _category(reason: str) -> str:
    return reason if CATEGORY.fullmatch(reason) else "error"


def _join(categories: Iterable[str]) -> str:
    return "/".join(dict.fromkeys(categories))


class CircuitBreaker:
    """Decides whether an endpoint may be tried now. Not thread-safe: one per event loop."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.state: State = "closed"
        self.opened_at = 0.0
        self.consecutive = 0
        self.probes = 0
        self.reason = ""
        self._streak: dict[str, None] = {}  # categories of the current consecutive failures
        # Told of each failure ("failure", category) and each opening ("open", reason): the
        # hook that shares breakers across replicas (crossroads.dispatch.fleet).
        self.listener: Callable[[str, str], None] | None = None
        self._window: deque[tuple[float, str | None]] = deque()  # (time, failure category)

    def _prune(self, now: float) -> None:
        horizon = now - self.config.window_s
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    def available(self) -> bool:
        """Whether a call may go through now (without taking a probe slot)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return self.clock() - self.opened_at >= self.config.open_s
        return self.probes < self.config.half_open_probes

    def acquire(self) -> bool:
        """Take permission for one call; half-open lets ``half_open_probes`` through."""
        if self.state == "open" and self.clock() - self.opened_at >= self.config.open_s:
            self.state, self.probes = "half_open", 0
        if self.state == "closed":
            return True
        if self.state == "half_open" and self.probes < self.config.half_open_probes:
            self.probes += 1
            return True
        return False

    def success(self) -> None:
        """A call succeeded: reset failures; a half-open breaker closes."""
        now = self.clock()
        self.consecutive = 0
        self._streak.clear()
        self._window.append((now, None))
        self._prune(now)
        if self.state != "closed":
            self.state, self.probes, self.reason = "closed", 0, ""

    def confirm(self) -> None:
        """A stream's first content arrived: a half-open breaker closes now, so a long
        streaming probe does not hold its endpoint until the stream ends (the call's own
        outcome is recorded when it ends)."""
        if self.state == "half_open":
            self.state, self.probes, self.reason = "closed", 0, ""

    def failure(self, category: str) -> None:
        """A call failed (``category``: see ``failure_category``; anything else counts as
        ``error``): maybe open the breaker."""
        category = _category(category)
        if self.listener is not None:
            self.listener("failure", category)
        now = self.clock()
        self.consecutive += 1
        self._streak[category] = None
        self._window.append((now, category))
        self._prune(now)
        if self.state == "half_open":
            self._open(now, f"probe failed: {category}")
            return
        if self.state == "open":
            return
        cfg = self.config
        if self.consecutive >= cfg.consecutive_failures:
            self._open(now, f"{self.consecutive} consecutive failures: {_join(self._streak)}")
            return
        if len(self._window) >= cfg.min_requests:
            failures = [c for _, c in self._window if c is not None]
            if len(failures) / len(self._window) >= cfg.error_rate:
                self._open(
                    now,
                    f"{len(failures)}/{len(self._window)} calls failed in {cfg.window_s:g} s: "
                    f"{_join(failures)}",
                )

    def release_probe(self) -> None:
        """A probe ended without a verdict (cancelled): free its slot."""
        if self.state == "half_open" and self.probes > 0:
            self.probes -= 1

    def _open(self, now: float, reason: str) -> None:
        self.state, self.opened_at, self.probes, self.reason = "open", now, 0, reason
        if self.listener is not None:
            self.listener("open", reason)

    def open_for(self, seconds: float, reason: str) -> None:
        """Open now for ``seconds`` (at most ``open_s``) because the fleet says so: another
        replica opened it, or the fleet's calls failed too often. Not told to the listener."""
        seconds = min(max(0.0, seconds), self.config.open_s)
        self.state, self.probes, self.reason = "open", 0, reason
        self.opened_at = self.clock() - (self.config.open_s - seconds)

    def retry_after(self) -> float:
        """Seconds until the breaker lets a probe through (0 if it would now)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.opened_at + self.config.open_s - self.clock())
