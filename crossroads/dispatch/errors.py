"""Translate what upstreams and HTTP clients raise into :class:`UpstreamError` (once, here)."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Mapping

import orjson

from crossroads.exceptions import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from crossroads.redact import scrub_secrets

# Upstream 4xx answers that are about the gateway, not the client's request: its
# credentials (401/403/407), its model ids (404), its pace (408, 429).
NOT_THE_CLIENTS = frozenset({401, 403, 404, 407, 408, 429})


def _upstream_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:300].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)[:300]
        return str(err)[:300]
    return str(data)[:300]


MAX_RETRY_AFTER_S = 3600.0


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: finite non-negative seconds or an HTTP
    date, capped at an hour; anything else (``nan``, ``inf``, ``-1``, words) is ignored."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = max(0.0, when.timestamp() - time.time())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def status_error(
    upstream: str, status: int, raw: bytes, headers: Mapping[str, str]
) -> UpstreamStatusError:
    """The error for an upstream's error status, with the status the gateway answers."""
    detail = _upstream_message(raw)
    if status == 429:
        answer, why = 429, "is rate limiting (429)"
    elif status in (401, 403, 407):
        answer, why = 502, f"rejected the gateway's credentials ({status}): check its api_key_env"
    elif status == 404:
        answer, why = 502, "does not know this model or path (404): check upstream_model/base_url"
    elif status == 408:
        answer, why = 504, "timed out (408)"
    elif 400 <= status < 500:
        answer, why = status, f"rejected the request ({status})"
    elif status in (503, 529):
        answer, why = 503, f"is overloaded or unavailable ({status})"
    elif 300 <= status < 400:
        where = headers.get("location")
        answer, why = (
            502,
            (
                f"answered a redirect ({status}{f' to {where}' if where else ''}), which crossroads "
                "does not follow: set base_url to the final address"
            ),
        )
    elif status < 200:
        answer, why = 502, f"answered without a final status ({status})"
    else:
        answer, why = 502, f"failed ({status})"
    err = UpstreamStatusError(
        f"upstream {upstream!r} {why}: {detail}" if detail else f"upstream {upstream!r} {why}",
        upstream=upstream,
        status=answer,
        body=detail,
        retry_after=_retry_after(headers),
        public=_client_fault(status, detail),
    )
    err.upstream_status = status  # type: ignore[attr-defined]
    err.retryable = status in (408, 429) or status >= 500 or status < 400
    return err


def _client_fault(status: int, detail: str) -> str | None:
    """What the client may read of an upstream 4xx about its own request (context too long,
    a bad parameter): the upstream's words with anything that looks like a key masked.
    None for everything else: the client gets a generic message."""
    if not 400 <= status < 500 or status in NOT_THE_CLIENTS:
        return None
    said = f": {scrub_secrets(detail)}" if detail else ""
    return f"The upstream rejected the request ({status}){said}"


def failure_category(exc: BaseException) -> str:
    """The kind of failure, for circuit-breaker reasons: ``timeout``, ``connect``,
    ``protocol``, ``http_<status>`` or ``error``; never the error's text."""
    if isinstance(exc, UpstreamTimeoutError):
        return "timeout"
    if isinstance(exc, UpstreamConnectError):
        return "connect"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol"
    if isinstance(exc, UpstreamStatusError):
        return f"http_{getattr(exc, 'upstream_status', exc.status)}"
    return "error"


def is_success(status: int) -> bool:
    """A 2xx: anything else (an error, a redirect, no status at all) is no answer."""
    return 200 <= status < 300


def body_too_large(upstream: str, limit: int) -> UpstreamProtocolError:
    """A response body past the upstream's ``max_response_bytes``."""
    return UpstreamProtocolError(
        f"upstream {upstream!r} sent a response body over max_response_bytes ({limit} bytes)",
        upstream=upstream,
    )


def compressed(upstream: str, encoding: str) -> UpstreamProtocolError:
    """A body in a ``content-encoding`` crossroads did not ask for (it sends
    ``accept-encoding: identity``): refused rather than inflated, so no zip bomb can be."""
    return UpstreamProtocolError(
        f"upstream {upstream!r} sent a body with content-encoding {encoding!r}, which "
        "crossroads does not ask for (it sends accept-encoding: identity): switch response "
        "compression off on the upstream",
        upstream=upstream,
    )


def is_compressed(encoding: str | bytes | None) -> bool:
    """Whether a ``content-encoding`` value names an actual coding (not ``identity``)."""
    if not encoding:
        return False
    text = encoding.decode("latin-1") if isinstance(encoding, bytes) else encoding
    return text.strip().lower() != "identity"


def translate(upstream: str, exc: BaseException) -> UpstreamError:
    """An :class:`UpstreamError` for anything an HTTP client raised."""
    if isinstance(exc, UpstreamError):
        return exc
    import aiohttp

    if isinstance(exc, asyncio.TimeoutError | TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeoutError(f"upstream {upstream!r} timed out", upstream=upstream)
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return UpstreamConnectError(
            f"could not connect to upstream {upstream!r}: {exc}", upstream=upstream
        )
    if isinstance(exc, aiohttp.ClientResponseError):  # a head aiohttp's parser refused
        return UpstreamProtocolError(
            f"upstream {upstream!r} sent a response that is not valid HTTP/1.1: {exc.message}",
            upstream=upstream,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return UpstreamProtocolError(
            f"upstream {upstream!r} closed the connection before finishing: {exc}",
            upstream=upstream,
        )
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamConnectError(f"upstream {upstream!r} failed: {exc}", upstream=upstream)
    return UpstreamError(
        f"upstream {upstream!r} failed: {type(exc).__name__}: {exc}", upstream=upstream
    )
