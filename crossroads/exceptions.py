"""The one exception tree of crossroads.

    CrossroadsError
    ├── ConfigError                 invalid configuration (carries every problem with its path)
    ├── RequestError                a client sent something we cannot serve (4xx)
    │   ├── InvalidRequestError     400: bad JSON, bad field
    │   ├── ModelNotFoundError      404: unknown model or router entrypoint
    │   ├── PayloadTooLargeError    413: body over the configured limit
    │   ├── HeadTooLargeError       431: request line and headers over the limit
    │   ├── RequestTimeoutError     408: the head or body did not arrive in time
    │   ├── ConnectionLimitError    503: the worker holds its maximum of connections
    │   ├── UnsupportedRouteError   404: unknown path;  405 via MethodNotAllowedError
    │   ├── NoCandidateError        400: no candidate fits the request (context, capabilities)
    │   ├── RequestEncodingError    400: the body cannot be encoded for the upstream
    │   ├── NotFoundError           404: no such API key or team (key store, admin API)
    │   ├── ConflictError           409: the name is taken, the team still has keys, or a
    │   │                                feedback repeat disagrees with the one stored
    │   ├── UnprocessableError      422: well-formed, but a value cannot be used (a reward
    │   │                                out of [0, 1], an unknown label)
    │   ├── PolicyDeniedError       403: the key's policy does not allow this model or operation
    │   ├── RateLimitError          429: a key's or team's rpm/tpm is used up (Retry-After)
    │   │   └── BudgetExceededError 429: the request's cost does not fit a budget
    │   └── LimitsUnavailableError  503: the state backend is down and the policy is closed
    ├── UpstreamError               an upstream failed (mapped to 502/503/504 or its own 4xx)
    │   ├── UpstreamConnectError    could not connect
    │   ├── UpstreamTimeoutError    connect/read/total timeout
    │   ├── UpstreamStatusError     upstream answered with an error status
    │   └── UpstreamProtocolError   upstream answered something we cannot parse
    ├── ClientGoneError             the client disconnected before its answer was written
    ├── NotFittedError              a router was used before fit/load
    ├── StoreError                  the trace/state store failed
    │   └── StateUnavailableError   the state backend did not answer (in time)
    └── LocalModelError             a bundled local model is missing or its server failed to start

Foreign errors (aiohttp, sqlite3, yaml, ...) are translated once, at the boundary,
with ``raise CrossroadsError(...) from exc``.
"""

from __future__ import annotations

from typing import Any


class CrossroadsError(Exception):
    """Base class of every error crossroads raises on purpose."""


class ConfigError(CrossroadsError):
    """A configuration is invalid; ``problems`` lists ``(path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        lines = [f"{path}: {msg}" if path else msg for path, msg in problems]
        super().__init__(where + ("\n" if len(lines) > 1 else "") + "\n".join(lines))


class RequestError(CrossroadsError):
    """A client error, rendered in the OpenAI error format."""

    status = 400
    error_type = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] = {}  # extra response headers (an instance sets its own)

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequestError(RequestError):
    """400: the body is not valid JSON or a field is wrong."""

    code = "invalid_request"


class ModelNotFoundError(RequestError):
    """404: the requested model is neither a configured model nor a router entrypoint."""

    status = 404
    code = "model_not_found"


class PayloadTooLargeError(RequestError):
    """413: the request body is over ``server.max_body_bytes``."""

    status = 413
    code = "payload_too_large"


class HeadTooLargeError(RequestError):
    """431: the request line and headers are too long."""

    status = 431
    code = "request_header_fields_too_large"


class RequestTimeoutError(RequestError):
    """408: the request's head or body did not arrive within its timeout."""

    status = 408
    code = "request_timeout"


class ConnectionLimitError(RequestError):
    """503: the worker already holds ``server.max_connections`` connections."""

    status = 503
    error_type = "server_overloaded"
    code = "too_many_connections"


class UnsupportedRouteError(RequestError):
    """404: no such path."""

    status = 404
    code = "not_found"


class MethodNotAllowedError(RequestError):
    """405: the path exists but not with this method."""

    status = 405
    code = "method_not_allowed"


class NoCandidateError(RequestError):
    """400: no candidate model of the decision can serve this request."""

    code = "no_candidate"


class RequestEncodingError(RequestError):
    """400: the request passed validation but cannot be encoded for the upstream (nested too
    deeply, a value JSON cannot hold, a part the upstream's format cannot express)."""

    code = "invalid_request_body"


class NotFoundError(RequestError):
    """404: the key store holds no key or team of that id or name."""

    status = 404
    code = "not_found"


class ConflictError(RequestError):
    """409: the key store refuses a change (an active key has the name; a team has keys), or
    feedback repeats a (trace, source) with another reward."""

    status = 409
    code = "conflict"


class UnprocessableError(RequestError):
    """422: the body is well-formed JSON of the right shape, but a value cannot be used."""

    status = 422
    code = "unprocessable"


class PolicyDeniedError(RequestError):
    """403: the caller's policy (``policy.models`` / ``policy.operations``) forbids this."""

    status = 403
    error_type = "permission_error"
    code = "not_allowed"


class RateLimitError(RequestError):
    """429: a rate limit of the caller's key or team is used up; ``headers`` carries
    ``Retry-After`` and the ``x-ratelimit-*`` headers."""

    status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, headers: dict[str, str], code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.headers = headers


class BudgetExceededError(RateLimitError):
    """429: the request's estimated cost does not fit the remaining budget it names."""

    error_type = "insufficient_quota"
    code = "budget_exceeded"


class LimitsUnavailableError(RequestError):
    """503: the state backend cannot be reached and the feature's policy is ``closed``."""

    status = 503
    error_type = "server_error"
    code = "limits_unavailable"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.headers = {"retry-after": str(max(1, round(retry_after)))}


class UpstreamError(CrossroadsError):
    """An upstream call failed; ``status`` is what the gateway answers with.

    ``message`` (and ``str()``) is the full story for traces and logs, the upstream's own
    words included. Clients read ``public`` when it is set (text the gateway vouches for),
    else a generic message with the status class and the trace id."""

    status = 502
    error_type = "upstream_error"
    code = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        upstream: str | None = None,
        status: int | None = None,
        body: Any = None,
        retry_after: float | None = None,
        public: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.public = public
        self.upstream = upstream
        if status is not None:
            self.status = status
        self.body = body
        self.retry_after = retry_after


class UpstreamConnectError(UpstreamError):
    """The upstream refused or dropped the connection before answering."""

    code = "upstream_unreachable"


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer (or stream) within a configured timeout."""

    status = 504
    code = "upstream_timeout"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status; 4xx other than 408/429 are not retryable."""

    code = "upstream_status"


class UpstreamProtocolError(UpstreamError):
    """The upstream answered, but not with something we can parse (bad JSON, cut stream)."""

    code = "upstream_protocol"


class ClientGoneError(CrossroadsError, ConnectionError):
    """The client disconnected: its answer cannot be written (traced as 499, not logged)."""


class NotFittedError(CrossroadsError, ValueError):
    """A router was asked to predict before it was fitted or loaded."""


class StoreError(CrossroadsError):
    """The trace or state store failed."""


class StateUnavailableError(StoreError):
    """The state backend failed or did not answer within ``state.timeout_ms``."""


class LocalModelError(CrossroadsError):
    """A bundled local model cannot run: its package is missing or its server did not start."""
