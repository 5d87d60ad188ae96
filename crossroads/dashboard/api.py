"""The admin JSON API under ``/v1/crossroads/admin/`` and the page at ``/ui``.

Every API call needs the admin key as a bearer header (the page keeps it in the tab's
``sessionStorage`` and sends it on each call); the page itself is a static shell with no
data in it. Store reads run in a worker thread, at most ``CONCURRENT_QUERIES`` at once and
each bounded by ``ui.query_timeout_s``, so the event loop never waits on the database.

=========================================  ==================================================
``GET /v1/crossroads/admin/traces``        summary rows, filtered, newest first, by pages
``GET /v1/crossroads/admin/traces/{id}``   one whole trace, with its counterfactual costs
``GET /v1/crossroads/admin/stats``         aggregates of a window (:mod:`.stats`)
``GET /v1/crossroads/admin/endpoints``     live endpoint state and the trace store's counters
``GET /v1/crossroads/admin/settings``      models and prices, decisions, the reference model
``GET /v1/crossroads/admin/eval``          the latest evaluation report (:mod:`.reports`)
``GET /v1/crossroads/admin/eval/{name}``   one of its plots (PNG)
=========================================  ==================================================
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from crossroads.dashboard.assets import SECURITY_HEADERS, Asset, load_assets
from crossroads.dashboard.reports import latest_report, load_report, plot_file
from crossroads.dashboard.stats import counterfactual, window_stats
from crossroads.exceptions import (
    InvalidRequestError,
    MethodNotAllowedError,
    RequestError,
    StoreError,
    UnsupportedRouteError,
)
from crossroads.gateway.errors import render
from crossroads.gateway.handlers import send_body
from crossroads.store.base import TraceQuery

if TYPE_CHECKING:
    from crossroads.gateway.app import Gateway

log = logging.getLogger("crossroads.dashboard")
Scope = dict[str, Any]
PREFIX = "/v1/crossroads/admin/"
API_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]
CONCURRENT_QUERIES = 2  # store reads in flight per worker, at most
MAX_PAGE = 200  # traces per page at most
MAX_WINDOW_S = 90 * 86400
FILTERS = ("model", "decision", "status", "key", "team", "format", "q")


class TraceNotFound(RequestError):
    """404: no trace has this id."""

    status = 404
    code = "trace_not_found"


class ReportNotFound(RequestError):
    """404: no evaluation report is configured or found."""

    status = 404
    code = "report_not_found"


class StoreBusy(RequestError):
    """503: the trace store did not answer in time, or too many queries are waiting."""

    status = 503
    error_type = "server_error"
    code = "store_unavailable"


class Dashboard:
    """Serves ``/ui`` and the admin API for a started :class:`~crossroads.gateway.app.Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def prepare(self) -> Dashboard:
        """Read the static files and build the lookup tables (once, at start-up)."""
        cfg = self.gateway.config
        self.assets_: dict[str, Asset] = load_assets()
        self.models_ = {m.name: m for m in cfg.models}
        self._queries = asyncio.Semaphore(CONCURRENT_QUERIES)
        self._routes: dict[str, Callable[[dict[str, str]], Any]] = {
            "traces": self._traces,
            "stats": self._stats,
            "endpoints": self._endpoints,
            "settings": self._settings,
            "eval": self._eval,
        }
        return self

    async def serve(self, scope: Scope, send: Any) -> None:
        """Answer a request for ``/ui...`` or ``/v1/crossroads/admin/...``."""
        path: str = scope["path"]
        try:
            api = path.startswith(PREFIX)
            if scope["method"] != "GET":
                raise MethodNotAllowedError(f"Use GET for {path}.")
            self.gateway._admin_on()
            if not api:
                return await self._page(scope, send, path)
            self.gateway._admin(scope)
            status, body, headers = await self._api(path[len(PREFIX) :], _params(scope))
        except Exception as exc:
            if not isinstance(exc, RequestError):
                log.exception("unexpected error on %s", path)
            status, body, extra = render(exc)
            headers = API_HEADERS + [(k.encode(), v.encode()) for k, v in extra.items()]
        await send_body(send, status, body, headers)

    async def _page(self, scope: Scope, send: Any, path: str) -> None:
        if path == "/ui":  # relative links resolve from /ui/
            headers = [(b"location", b"/ui/"), *SECURITY_HEADERS]
            return await send_body(send, 308, b"", headers)
        asset = self.assets_.get(path.removeprefix("/ui/"))
        if asset is None:
            raise UnsupportedRouteError(f"No dashboard file at {path}.")
        for name, value in scope["headers"]:
            if name == b"if-none-match" and asset.etag in value:
                return await send_body(send, 304, b"", asset.headers())
        await send_body(send, 200, asset.body, asset.headers())

    async def _api(self, route: str, params: dict[str, str]) -> tuple[int, bytes, list[Any]]:
        name, _, rest = route.partition("/")
        if name == "traces" and rest:
            return 200, await self._trace(rest, params), API_HEADERS
        if name == "eval" and rest:
            return await self._plot(rest, params)
        handler = None if rest else self._routes.get(name)
        if handler is None:
            raise UnsupportedRouteError(f"No admin route {PREFIX}{route}.")
        return 200, await handler(params), API_HEADERS

    async def _read(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in a worker thread, within the query bound."""
        timeout = self.gateway.config.ui.query_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self._queries.acquire()
        except TimeoutError:
            raise StoreBusy(
                f"Too many dashboard queries are waiting (more than {timeout} s); try again."
            ) from None
        # The slot frees when the thread ends, not when a client that went away stops
        # waiting for it: threads in flight stay within the bound.
        future = asyncio.get_running_loop().run_in_executor(None, fn)
        future.add_done_callback(lambda _: self._queries.release())
        try:
            return await asyncio.shield(future)
        except StoreError as exc:
            raise StoreBusy(str(exc)) from exc

    # ------------------------------------------------------------------ routes

    async def _traces(self, params: dict[str, str]) -> bytes:
        _allow(params, (*FILTERS, "since", "until", "window", "limit", "cursor"))
        limit = _int(params, "limit", 50, 1, MAX_PAGE)
        since, until = _window(params, None)
        query = self._query(params, since, until, limit + 1)
        cursor = params.get("cursor")
        if cursor:
            query = replace(query, after=_cursor(cursor))
        rows = await self._read(lambda: self.gateway.store.search(query))
        more = len(rows) > limit
        rows = rows[:limit]
        reference = self.gateway.config.ui.reference_model
        for row in rows:
            row["counterfactual"] = counterfactual(row, self.models_, reference)
        last = rows[-1] if rows and more else None
        body = {
            "object": "list",
            "data": rows,
            "next_cursor": f"{last['created_at']!r}:{last['trace_id']}" if last else None,
        }
        return orjson.dumps(body)

    async def _trace(self, trace_id: str, params: dict[str, str]) -> bytes:
        _allow(params, ())
        found = await self._read(lambda: self.gateway.store.get(trace_id))
        if found is None:
            raise TraceNotFound(f"No trace {trace_id!r} in the trace store.", param="id")
        found["counterfactual"] = counterfactual(
            _row_of(found), self.models_, self.gateway.config.ui.reference_model
        )
        return orjson.dumps(found)

    async def _stats(self, params: dict[str, str]) -> bytes:
        _allow(params, (*FILTERS, "since", "until", "window", "buckets"))
        buckets = _int(params, "buckets", 60, 1, 500)
        since, until = _window(params, 3600)
        assert since is not None and until is not None  # a default window gives both
        start, end = since, until
        ui = self.gateway.config.ui
        query = self._query(params, start, end, ui.window_traces)

        def compute() -> dict[str, Any]:
            rows = self.gateway.store.search(query)
            truncated = len(rows) >= ui.window_traces
            return window_stats(
                rows, self.models_, ui.reference_model, start, end, buckets, truncated
            )

        return orjson.dumps(await self._read(compute))

    async def _endpoints(self, params: dict[str, str]) -> bytes:
        _allow(params, ())
        gw = self.gateway
        body = {
            "object": "list",
            "data": gw.dispatcher.snapshot(),
            "store": {"healthy": gw.store.healthy(), **gw.store.stats()},
        }
        return orjson.dumps(body)

    async def _settings(self, params: dict[str, str]) -> bytes:
        _allow(params, ())
        cfg = self.gateway.config
        body = {
            "object": "crossroads.settings",
            "version": _version(),
            "models": [
                {"name": m.name, "price": {"input": m.price.input, "output": m.price.output}}
                for m in cfg.models
            ],
            "entrypoints": [e.name for e in cfg.entrypoints],
            "decisions": [*(d.name for d in cfg.decisions), cfg.default_decision.name],
            "formats": _formats(),
            "keys": [k.name for k in cfg.server.api_keys],
            "teams": [t.name for t in cfg.teams],
            "reference_model": cfg.ui.reference_model,
            "window_traces": cfg.ui.window_traces,
            "eval_reports": cfg.ui.eval_reports is not None,
        }
        return orjson.dumps(body)

    def _report_dir(self) -> Path:
        root = self.gateway.config.ui.eval_reports
        if root is None:
            raise ReportNotFound(
                "No evaluation report is configured: set ui.eval_reports to the directory "
                "`crossroads eval --out` writes to."
            )
        found = latest_report(Path(root))
        if found is None:
            raise ReportNotFound(f"No evaluation report (index.html) under {root}.")
        return found

    async def _eval(self, params: dict[str, str]) -> bytes:
        _allow(params, ())
        served = self.gateway.pipeline.served_routers()
        report = await self._read(lambda: load_report(self._report_dir(), served))
        return orjson.dumps(report)

    async def _plot(self, name: str, params: dict[str, str]) -> tuple[int, bytes, list[Any]]:
        _allow(params, ())

        def read() -> bytes | None:
            path = plot_file(self._report_dir(), name)
            return path.read_bytes() if path is not None else None

        body = await self._read(read)
        if body is None:
            raise ReportNotFound(f"The latest evaluation report has no plot {name!r}.")
        headers = [(b"content-type", b"image/png"), *API_HEADERS[1:]]
        return 200, body, headers

    def _query(
        self, params: dict[str, str], since: float | None, until: float | None, limit: int
    ) -> TraceQuery:
        status: Any = params.get("status")
        if status is not None and status not in ("ok", "error"):
            if not status.isdigit() or not 100 <= int(status) <= 599:
                raise InvalidRequestError(
                    f"status must be 'ok', 'error' or an HTTP status code, not {status!r}.",
                    param="status",
                )
            status = int(status)
        return TraceQuery(
            since=since,
            until=until,
            model=params.get("model"),
            decision=params.get("decision"),
            status=status,
            key=params.get("key"),
            team=params.get("team"),
            format=params.get("format"),
            trace_id=params.get("q"),
            limit=limit,
            timeout_s=self.gateway.config.ui.query_timeout_s,
        )


def _params(scope: Scope) -> dict[str, str]:
    """The query string's parameters (empty values dropped); a repeated one is an error."""
    raw = scope.get("query_string", b"").decode("latin-1")
    try:
        pairs = parse_qsl(raw, max_num_fields=32, strict_parsing=False)
    except ValueError as exc:
        raise InvalidRequestError(f"Bad query string: {exc}.") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidRequestError(f"The parameter {key!r} is given twice.", param=key)
        if value:
            params[key] = value[:256]
    return params


def _allow(params: dict[str, str], allowed: tuple[str, ...]) -> None:
    for key in params:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise InvalidRequestError(
                f"Unknown parameter {key!r}; this route takes: {known}.", param=key
            )


def _number(params: dict[str, str], key: str) -> float | None:
    text = params.get(key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidRequestError(f"{key} must be a number, not {text!r}.", param=key)
    return value


def _int(params: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    value = _number(params, key)
    if value is None:
        return default
    if value != int(value) or not lo <= value <= hi:
        raise InvalidRequestError(
            f"{key} must be a whole number from {lo} to {hi}, not {params[key]!r}.", param=key
        )
    return int(value)


def _window(params: dict[str, str], default_s: float | None) -> tuple[float | None, float | None]:
    """``since``/``until`` (unix seconds), or ``window`` seconds up to now (or to ``until``)."""
    since, until = _number(params, "since"), _number(params, "until")
    window = _number(params, "window")
    if window is not None and since is not None:
        raise InvalidRequestError("Give since or window, not both.", param="window")
    if window is not None and not 1 <= window <= MAX_WINDOW_S:
        raise InvalidRequestError(
            f"window must be from 1 to {MAX_WINDOW_S} seconds, not {params['window']!r}.",
            param="window",
        )
    window = window if window is not None else default_s
    if since is None and window is not None:
        until = until if until is not None else time.time()
        since = until - window
    if default_s is not None and until is None:
        until = time.time()
    if since is not None and until is not None and since >= until:
        raise InvalidRequestError("since must be before until.", param="since")
    return since, until


def _cursor(text: str) -> tuple[float, str]:
    created, _, trace_id = text.partition(":")
    try:
        at = float(created)
    except ValueError:
        at = float("nan")
    if not trace_id or at != at:
        raise InvalidRequestError(
            f"cursor {text!r} is not one this API gave: pass next_cursor as it came.",
            param="cursor",
        )
    return at, trace_id


def _row_of(trace: dict[str, Any]) -> dict[str, Any]:
    """The fields :func:`~crossroads.dashboard.stats.counterfactual` reads, from a whole trace."""
    route = trace.get("route") or {}
    usage = trace.get("usage") or {}
    return {
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cost": trace.get("cost"),
        "model": trace.get("model") or route.get("model"),
        "candidates": [c["model"] for c in route.get("candidates") or ()],
    }


def _version() -> str:
    from crossroads import __version__

    return __version__


def _formats() -> list[str]:
    from crossroads.gateway.app import FORMAT_ROUTES

    return list(FORMAT_ROUTES.values())
