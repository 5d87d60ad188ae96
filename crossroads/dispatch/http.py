"""What every HTTP upstream shares: one pooled aiohttp session, its key, closing it."""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from crossroads.dispatch.base import Upstream


class HTTPUpstream(Upstream):
    """An upstream reached over HTTP. Subclasses add their auth headers in :meth:`_headers`.

    The session is created on first use (it needs the running event loop) and reused:
    one connection pool per upstream per worker, nothing allocated per request.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.name: str = config.name
        self._session: aiohttp.ClientSession | None = None

    def api_key(self) -> str | None:
        """The key from the environment variable the config names, if set."""
        env = self.config.api_key_env
        return os.environ.get(env) if env else None

    def _headers(self) -> dict[str, str]:
        return {"content-type": "application/json", **self.config.headers}

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
                auto_decompress=True,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
