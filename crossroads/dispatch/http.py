"""What every HTTP upstream shares: its pooled client (the raw HTTP/1.1 pool of
:mod:`crossroads.dispatch.rawhttp` for plain ``http://`` URLs, one aiohttp session for
the rest), its key, the bounds on what it may send back, closing it.

Both clients ask for no compression, refuse a compressed body, follow no redirect, and
read at most ``max_response_bytes`` of a body (the raw client in its parser; aiohttp in
:meth:`HTTPUpstream.read_body`)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from crossroads.dispatch.base import Upstream
from crossroads.dispatch.errors import body_too_large, compressed, is_compressed
from crossroads.dispatch.rawhttp import ConnectionPool
from crossroads.exceptions import RequestEncodingError, UpstreamProtocolError
from crossroads.observe.context import TRACEPARENT

IDENTITY = {"accept-encoding": "identity"}  # no compression: bodies are bounded as they come
CONTENT_LENGTH = b"content-length: "  # how a raw request head ends


def traced_head(head: bytes) -> bytes:
    """A raw request head with the current attempt's ``traceparent`` (tracing on), else as is."""
    parent = TRACEPARENT.get()
    if parent is None:
        return head
    cut = len(head) - len(CONTENT_LENGTH)
    return b"%straceparent: %s\r\n%s" % (head[:cut], parent.encode(), CONTENT_LENGTH)


def trace_headers() -> dict[str, str] | None:
    """Per-call headers for aiohttp: the current attempt's ``traceparent``, if tracing is on."""
    parent = TRACEPARENT.get()
    return None if parent is None else {"traceparent": parent}


# "aiohttp" switches the raw client off (for comparison, or an upstream it mishandles).
def raw_address(base_url: str, client: str = "raw") -> tuple[str, int] | None:
    """``(host, port)`` when the raw client can serve ``base_url``: plain ``http://``, no
    credentials or query in the URL, ``http_client`` not ``aiohttp``; None for anything
    else (aiohttp serves those)."""
    if client == "aiohttp":
        return None
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.username or parts.password or parts.query:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or 80


class HTTPUpstream(Upstream):
    """An upstream reached over HTTP. Subclasses add their auth headers in :meth:`_headers`.

    The session is created on first use (it needs the running event loop) and reused:
    one connection pool per upstream per worker, nothing allocated per request.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.name: str = config.name
        self._session: aiohttp.ClientSession | None = None
        self._pool: ConnectionPool | None = None
        self._raw_address = raw_address(config.base_url, getattr(config, "http_client", "aiohttp"))

    def api_key(self) -> str | None:
        """The key from the environment variable the config names, if set."""
        env = self.config.api_key_env
        return os.environ.get(env) if env else None

    def _headers(self) -> dict[str, str]:
        own = {k: v for k, v in self.config.headers.items() if k.lower() != "accept-encoding"}
        return {"content-type": "application/json", **own, **IDENTITY}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            t = self.config.timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.config.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
                ),
                timeout=aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.read),
                headers=self._headers(),
                skip_auto_headers=("User-Agent",),
                auto_decompress=False,  # a compressed body is refused, never inflated
            )
        return self._session

    def _raw_pool(self) -> ConnectionPool:
        if self._pool is None:
            assert self._raw_address is not None
            host, port = self._raw_address
            self._pool = ConnectionPool(
                host,
                port,
                name=self.name,
                timeouts=self.config.timeouts,
                max_connections=self.config.max_connections,
                max_response_bytes=self.config.max_response_bytes,
            )
        return self._pool

    def check_encoding(self, resp: aiohttp.ClientResponse) -> None:
        """An aiohttp response in a content-encoding we did not ask for is refused."""
        encoding = resp.headers.get("content-encoding")
        if is_compressed(encoding):
            raise compressed(self.name, encoding)  # type: ignore[arg-type]

    async def read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        """An aiohttp response's whole body, uncompressed and within ``max_response_bytes``:
        a larger declared length fails before a byte of the body is read."""
        self.check_encoding(resp)
        limit = self.config.max_response_bytes
        length = resp.content_length
        if length is not None:
            if length > limit:
                raise body_too_large(self.name, limit)
            return await resp.read()  # aiohttp reads exactly the declared length
        chunks, size = [], 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise body_too_large(self.name, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def encode(self, body: Any) -> bytes:
        """The JSON of a request body; a body JSON cannot hold is the client's 400, raised
        before anything is sent (so it never counts against the endpoint)."""
        try:
            return orjson.dumps(body)
        except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError) as exc:
            raise RequestEncodingError(
                f"The request body cannot be encoded for upstream {self.name!r} ({exc}): "
                "nest values less deeply (at most 254 levels) and send only JSON values."
            ) from None

    def parse_body(self, raw: bytes) -> Any:
        """The JSON of an upstream's answer; anything else is its protocol error."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                f"upstream {self.name!r} answered with invalid JSON ({exc}): {raw[:200]!r}",
                upstream=self.name,
            ) from None

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None
