"""When and how long to wait before trying again."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from crossroads.config import RetryConfig
from crossroads.exceptions import CrossroadsError, UpstreamError, UpstreamStatusError

_random = random.Random()


def is_retryable(exc: BaseException) -> bool:
    """Connect errors, timeouts, 408/429/5xx and broken bodies are; a client's bad request is
    not (trying elsewhere would fail the same way)."""
    if isinstance(exc, UpstreamStatusError):
        status = getattr(exc, "upstream_status", exc.status)
        # 401/403/404 say this endpoint is misconfigured, not that the request is bad, and
        # so does an answer that is no answer at all (a redirect, no final status).
        return status in (401, 403, 404, 408, 409, 429) or status >= 500 or status < 400
    return isinstance(exc, UpstreamError) or not isinstance(exc, CrossroadsError)


class RetryBudget:
    """Retries may add at most ``budget_ratio`` of the requests of the last
    ``budget_window_s``, plus ``budget_min_per_s`` a second: a partly failing upstream sees a
    bounded multiple of its load instead of ``max_attempts`` times it. Counted in one-second
    buckets (O(1) per call). One per dispatcher, shared by its endpoints."""

    def __init__(self, config: RetryConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._n = max(1, round(config.budget_window_s))
        self._requests = [0] * self._n
        self._retries = [0] * self._n
        self._second = 0

    def _roll(self) -> int:
        now = int(self.clock())
        gap = now - self._second
        if gap:
            for k in range(1, min(gap, self._n) + 1):
                i = (self._second + k) % self._n
                self._requests[i] = self._retries[i] = 0
            self._second = now
        return now % self._n

    def request(self) -> None:
        """A request made its first attempt."""
        self._requests[self._roll()] += 1

    def try_retry(self) -> bool:
        """Take one retry from the budget, if it has one."""
        i = self._roll()
        cfg = self.config
        allowed = cfg.budget_ratio * sum(self._requests) + cfg.budget_min_per_s * self._n
        if sum(self._retries) >= allowed:
            return False
        self._retries[i] += 1
        return True


def backoff_s(attempt: int, config: RetryConfig, retry_after: float | None = None) -> float:
    """Seconds before retry number ``attempt`` (1-based) on an endpoint already tried:
    full-jitter exponential backoff, or the upstream's ``Retry-After``."""
    if retry_after is not None:
        return retry_after
    ceiling = min(config.backoff_max_ms, config.backoff_base_ms * 2 ** (attempt - 1))
    return _random.uniform(0, ceiling) / 1000
