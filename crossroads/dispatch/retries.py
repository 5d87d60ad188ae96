"""When and how long to wait before trying again."""

from __future__ import annotations

import random

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


def backoff_s(attempt: int, config: RetryConfig, retry_after: float | None = None) -> float:
    """Seconds before retry number ``attempt`` (1-based) on an endpoint already tried:
    full-jitter exponential backoff, or the upstream's ``Retry-After``."""
    if retry_after is not None:
        return retry_after
    ceiling = min(config.backoff_max_ms, config.backoff_base_ms * 2 ** (attempt - 1))
    return _random.uniform(0, ceiling) / 1000
