"""The OpenAI-compatible upstream (vLLM, Ollama, llama.cpp, SGLang, OpenAI, Azure, ...)
on one pooled aiohttp session per upstream."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from crossroads.config import OpenAIUpstream as OpenAIUpstreamConfig
from crossroads.dispatch.base import Completion, Upstream, usage_from
from crossroads.dispatch.errors import status_error, translate
from crossroads.dispatch.sse import frames
from crossroads.exceptions import UpstreamProtocolError, UpstreamTimeoutError
from crossroads.types import Endpoint

PATHS: dict[Endpoint, str] = {"chat": "/chat/completions", "completions": "/completions"}


class OpenAIUpstream(Upstream):
    """Calls ``{base_url}/chat/completions`` and ``{base_url}/completions``."""

    def __init__(self, config: OpenAIUpstreamConfig) -> None:
        self.config = config
        self.name = config.name
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.config.headers}
        env = self.config.api_key_env
        key = os.environ.get(env) if env else None
        if key:
            header = self.config.api_key_header.lower()
            headers[header] = f"Bearer {key}" if header == "authorization" else key
        return headers

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            t = self.config.timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.config.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
                ),
                timeout=aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.read),
                headers=self._headers(),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
        return self._session

    def _url(self, endpoint: Endpoint) -> str:
        return self.config.base_url + PATHS[endpoint]

    def _first_byte_timeout(self, timer: asyncio.Timeout) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"upstream {self.name!r} sent nothing within "
            f"timeouts.first_byte ({self.config.timeouts.first_byte:g} s)",
            upstream=self.name,
        )

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        session = self._client()
        timer = asyncio.timeout(self.config.timeouts.first_byte)
        try:
            async with (
                timer,
                session.post(
                    self._url(endpoint), data=orjson.dumps(body), params=self.config.query or None
                ) as resp,
            ):
                timer.reschedule(None)
                raw = await resp.read()
                if resp.status >= 400:
                    raise status_error(self.name, resp.status, raw, resp.headers)
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            if timer.expired():
                raise self._first_byte_timeout(timer) from None
            raise translate(self.name, exc) from exc
        except Exception as exc:
            raise translate(self.name, exc) from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                f"upstream {self.name!r} answered with invalid JSON ({exc}): {raw[:200]!r}",
                upstream=self.name,
            ) from None
        if not isinstance(data, dict) or "choices" not in data:
            raise UpstreamProtocolError(
                f"upstream {self.name!r} answered JSON without 'choices': {raw[:200]!r}",
                upstream=self.name,
            )
        return Completion(raw, usage_from(data))

    async def stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[bytes]:
        session = self._client()
        # The first-byte timer covers the request and the first event; it is switched off
        # before the first yield, so it never fires while the consumer holds the task.
        timer = asyncio.timeout(self.config.timeouts.first_byte)
        try:
            async with (
                timer,
                session.post(
                    self._url(endpoint), data=orjson.dumps(body), params=self.config.query or None
                ) as resp,
            ):
                if resp.status >= 400:
                    raise status_error(self.name, resp.status, await resp.read(), resp.headers)
                async for frame in frames(resp.content.iter_any()):
                    if timer.when() is not None:
                        timer.reschedule(None)
                    yield frame
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except TimeoutError as exc:
            if timer.expired():
                raise self._first_byte_timeout(timer) from None
            raise translate(self.name, exc) from exc
        except Exception as exc:
            raise translate(self.name, exc) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
