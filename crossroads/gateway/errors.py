"""Errors in the OpenAI format: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import math
from typing import Any

import orjson

from crossroads.exceptions import (
    CrossroadsError,
    PayloadTooLargeError,
    RequestError,
    UpstreamError,
)


def error_body(message: str, error_type: str, code: str | None = None, param: Any = None) -> bytes:
    """An OpenAI-format error body."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )


def render(exc: BaseException, body: Any = None) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and extra headers for any exception; never a traceback. ``body`` builds
    the error body of the client's format (``error_body(status, message, type, code,
    param)``); the OpenAI shape by default."""
    if body is not None:
        status, payload, headers = render(exc)
        err = orjson.loads(payload)["error"]
        return status, body(status, err["message"], err["type"], err["code"], err["param"]), headers
    if isinstance(exc, RequestError):
        return exc.status, error_body(exc.message, exc.error_type, exc.code, exc.param), {}
    if isinstance(exc, UpstreamError):
        headers = {}
        if exc.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        return exc.status, error_body(exc.message, exc.error_type, exc.code), headers
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


def too_large(size: int, limit: int) -> PayloadTooLargeError:
    """413 for a body of ``size`` bytes over ``server.max_body_bytes``."""
    return PayloadTooLargeError(
        f"The request body ({size} bytes) is over the limit of {limit} bytes "
        "(server.max_body_bytes). Send a shorter prompt or raise the limit."
    )
