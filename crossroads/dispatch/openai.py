"""The OpenAI-compatible upstream (vLLM, Ollama, llama.cpp, SGLang, OpenAI, Azure, ...):
plain ``http://`` URLs on the raw pooled client of :mod:`crossroads.dispatch.rawhttp`,
everything else on one pooled aiohttp session per upstream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from crossroads.config import OpenAIUpstreamConfig
from crossroads.dispatch.base import Completion
from crossroads.dispatch.errors import is_success, status_error, translate
from crossroads.dispatch.http import HTTPUpstream, trace_headers, traced_head
from crossroads.dispatch.sse import DONE, frames
from crossroads.exceptions import UpstreamError, UpstreamProtocolError, UpstreamTimeoutError
from crossroads.formats.openai_chat import usage_from
from crossroads.types import Operation

PATHS: dict[Operation, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


class OpenAIUpstream(HTTPUpstream):
    """Calls ``{base_url}/chat/completions`` and ``{base_url}/completions``."""

    config: OpenAIUpstreamConfig
    _raw_heads: dict[Operation, bytes] | None = None

    def _headers(self) -> dict[str, str]:
        headers = super()._headers()
        key = self.api_key()
        if key:
            header = self.config.api_key_header.lower()
            headers[header] = f"Bearer {key}" if header == "authorization" else key
        return headers

    def _url(self, operation: Operation) -> str:
        return self.config.base_url + PATHS[operation]

    def _heads(self) -> dict[Operation, bytes]:
        """Request heads for the raw client, built once: path, query and static headers."""
        heads = self._raw_heads
        if heads is None:
            pool = self._raw_pool()
            prefix = urlsplit(self.config.base_url).path
            query = "?" + urlencode(self.config.query) if self.config.query else ""
            headers = self._headers()
            heads = self._raw_heads = {
                operation: pool.request_head("POST", prefix + path + query, headers)
                for operation, path in PATHS.items()
            }
        return heads

    def _first_byte_timeout(self, timer: asyncio.Timeout) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"upstream {self.name!r} sent nothing within "
            f"timeouts.first_byte ({self.config.timeouts.first_byte:g} s)",
            upstream=self.name,
        )

    deadlines = True

    async def complete(
        self, operation: Operation, body: dict[str, Any], within: float | None = None
    ) -> Completion:
        if self._raw_address is not None:
            raw = await self._complete_raw(operation, body, within)
        elif within is not None:
            try:
                async with asyncio.timeout(within):
                    raw = await self._complete_aiohttp(operation, body)
            except TimeoutError:
                raise UpstreamTimeoutError(
                    f"upstream {self.name!r} did not answer within the dispatch deadline",
                    upstream=self.name,
                ) from None
        else:
            raw = await self._complete_aiohttp(operation, body)
        data = self.parse_body(raw)
        field = "data" if operation == "embeddings" else "choices"
        if not isinstance(data, dict) or field not in data:
            raise UpstreamProtocolError(
                f"upstream {self.name!r} answered JSON without {field!r}: {raw[:200]!r}",
                upstream=self.name,
            )
        return Completion(raw, usage_from(data))

    async def _complete_raw(
        self, operation: Operation, body: dict[str, Any], within: float | None
    ) -> bytes:
        pool = self._pool or self._raw_pool()
        payload = self.encode(body)
        try:
            head = traced_head((self._raw_heads or self._heads())[operation])
            status, headers, raw = await pool.fetch(head, payload, within)
        except (asyncio.CancelledError, UpstreamError):
            raise
        except Exception as exc:
            raise translate(self.name, exc) from exc
        if not 200 <= status < 300:  # is_success, inline
            raise status_error(self.name, status, raw, headers)
        return raw

    async def _complete_aiohttp(self, operation: Operation, body: dict[str, Any]) -> bytes:
        async with self._post(operation, body) as (resp, timer):
            timer.reschedule(None)
            return await self.read_body(resp)

    @contextlib.asynccontextmanager
    async def _post(
        self, operation: Operation, body: dict[str, Any]
    ) -> AsyncIterator[tuple[Any, asyncio.Timeout]]:
        """POST on the aiohttp session under the first-byte timer (the caller switches it
        off); an error status, and whatever fails inside the block, become UpstreamErrors."""
        payload = self.encode(body)
        timer = asyncio.timeout(self.config.timeouts.first_byte)
        try:
            async with (
                timer,
                self._client().post(
                    self._url(operation),
                    data=payload,
                    params=self.config.query or None,
                    headers=trace_headers(),
                    allow_redirects=False,
                ) as resp,
            ):
                if not is_success(resp.status):
                    raw = await self.read_body(resp)
                    raise status_error(self.name, resp.status, raw, resp.headers)
                yield resp, timer
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except TimeoutError as exc:
            if timer.expired():
                raise self._first_byte_timeout(timer) from None
            raise translate(self.name, exc) from exc
        except Exception as exc:
            raise translate(self.name, exc) from exc

    def stream(self, operation: Operation, body: dict[str, Any]) -> AsyncIterator[bytes]:
        if self._raw_address is not None:
            return self._stream_raw(operation, body)
        return self._stream_aiohttp(operation, body)

    async def _stream_raw(self, operation: Operation, body: dict[str, Any]) -> AsyncIterator[bytes]:
        pool = self._pool or self._raw_pool()
        # The pool's first_byte timer runs until the first body byte, then read and total.
        payload = self.encode(body)
        try:
            response = await pool.open(traced_head(self._heads()[operation]), payload)
        except (asyncio.CancelledError, UpstreamError):
            raise
        except Exception as exc:
            raise translate(self.name, exc) from exc
        done = False  # the consumer saw [DONE]: let the connection finish and be reused
        try:
            if not is_success(response.status):
                raw = await response.read()  # within max_response_bytes: the pool checks
                raise status_error(self.name, response.status, raw, response.headers)
            async for batch in frames(response, self.name, self.config.max_event_bytes):
                done = batch.endswith(DONE)
                yield batch
        finally:
            response.close(reuse=done)

    async def _stream_aiohttp(
        self, operation: Operation, body: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        # The first-byte timer covers the request and the first event; it is switched off
        # before the first yield, so it never fires while the consumer holds the task.
        async with self._post(operation, body) as (resp, timer):
            self.check_encoding(resp)
            events = frames(resp.content.iter_any(), self.name, self.config.max_event_bytes)
            async for frame in events:
                if timer.when() is not None:
                    timer.reschedule(None)
                yield frame
