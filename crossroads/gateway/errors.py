"""Errors in the OpenAI format: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import math
from typing import Any

import orjson

from crossroads.exceptions import (
    CrossroadsError,
    PayloadTooLargeError,
    RequestError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)


def error_body(message: str, error_type: str, code: str | None = None, param: Any = None) -> bytes:
    """An OpenAI-format error body."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )


def render(
    exc: BaseException, body: Any = None, trace_id: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and extra headers for any exception; never a traceback. ``body`` builds
    the error body of the client's format (``error_body(status, message, type, code,
    param)``); the OpenAI shape by default. An upstream's own words reach the client only
    through :func:`client_message`."""
    if body is not None:
        status, payload, headers = render(exc, trace_id=trace_id)
        err = orjson.loads(payload)["error"]
        return status, body(status, err["message"], err["type"], err["code"], err["param"]), headers
    if isinstance(exc, RequestError):
        body = error_body(exc.message, exc.error_type, exc.code, exc.param)
        return exc.status, body, exc.headers
    if isinstance(exc, UpstreamError):
        headers = {}
        if exc.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        message = client_message(exc, trace_id)
        return exc.status, error_body(message, exc.error_type, exc.code), headers
    if isinstance(exc, CrossroadsError):
        return 500, error_body(str(exc), "server_error", "internal_error"), {}
    return (
        500,
        error_body(
            f"internal error ({type(exc).__name__}); the gateway logged the details",
            "server_error",
            "internal_error",
        ),
        {},
    )


def error_code(exc: BaseException) -> str:
    """The ``code`` of the error body :func:`render` makes for ``exc``."""
    code = getattr(exc, "code", None) if isinstance(exc, CrossroadsError) else None
    return code if isinstance(code, str) else "internal_error"


def client_message(exc: UpstreamError, trace_id: str | None = None) -> str:
    """What a client reads of an upstream failure: the error's ``public`` text when it has
    one (the client's own 4xx, keys masked; every endpoint down), else the kind of failure,
    the status class and the trace id. The upstream's words (which can quote keys, account
    ids or the gateway's config) stay in the trace."""
    if exc.public:
        return exc.public
    status = getattr(exc, "upstream_status", None)
    if isinstance(exc, UpstreamTimeoutError):
        what = "did not answer in time (timeout)"
    elif isinstance(exc, UpstreamConnectError):
        what = "could not be reached (connect)"
    elif isinstance(exc, UpstreamProtocolError):
        what = "sent an answer the gateway could not read (protocol)"
    elif status == 429:
        what = "is rate limiting (429); retry later"
    elif isinstance(status, int):
        what = f"failed (upstream status {status // 100}xx)"
    else:
        what = f"failed ({exc.status // 100}xx)"
    where = f" The gateway's trace {trace_id} has the details." if trace_id else ""
    return f"The upstream model server {what}.{where}"


def too_large(
    size: int, limit: int, setting: str = "server.max_body_bytes"
) -> PayloadTooLargeError:
    """413 for a body of ``size`` bytes over ``limit`` (the ``setting``)."""
    return PayloadTooLargeError(
        f"The request body ({size} bytes) is over the limit of {limit} bytes "
        f"({setting}). Send a shorter body or raise the limit."
    )
