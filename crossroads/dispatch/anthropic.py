"""The Anthropic upstream: Messages bodies (encoded by :mod:`crossroads.formats.anthropic_messages`)
posted to ``{base_url}/v1/messages`` on one pooled aiohttp session per upstream; answers and
streams come back as Anthropic sent them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from crossroads.dispatch.base import Completion
from crossroads.dispatch.errors import is_success, status_error, translate
from crossroads.dispatch.http import HTTPUpstream, trace_headers
from crossroads.dispatch.sse import frames
from crossroads.exceptions import UpstreamStatusError
from crossroads.formats.anthropic_messages import usage_from
from crossroads.formats.base import answer_object
from crossroads.types import Operation

MESSAGES_PATH = "/v1/messages"


class AnthropicUpstream(HTTPUpstream):
    """Calls ``{base_url}/v1/messages``; only chat requests exist on Anthropic."""

    formats = {"chat": "anthropic_messages"}

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.api_version, **super()._headers()}
        key = self.api_key()
        if key:
            headers["x-api-key"] = key
        return headers

    def _payload(self, body: dict[str, Any]) -> bytes:
        if "max_tokens" not in body:  # Anthropic requires it
            body = {**body, "max_tokens": self.config.default_max_tokens}
        return self.encode(body)

    async def complete(self, operation: Operation, body: dict[str, Any]) -> Completion:
        payload = self._payload(body)
        session = self._client()
        try:
            async with session.post(
                self.config.base_url + MESSAGES_PATH,
                data=payload,
                headers=trace_headers(),
                allow_redirects=False,
            ) as resp:
                raw = await self.read_body(resp)
                if not is_success(resp.status):
                    raise anthropic_status_error(self.name, resp.status, raw, resp.headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise translate(self.name, exc) from exc
        data = answer_object(raw, self.name, "content")
        return Completion(raw, usage_from(data.get("usage")))

    async def stream(self, operation: Operation, body: dict[str, Any]) -> AsyncIterator[bytes]:
        payload = self._payload(body)
        session = self._client()
        try:
            async with session.post(
                self.config.base_url + MESSAGES_PATH,
                data=payload,
                headers=trace_headers(),
                allow_redirects=False,
            ) as resp:
                if not is_success(resp.status):
                    raise anthropic_status_error(
                        self.name, resp.status, await self.read_body(resp), resp.headers
                    )
                self.check_encoding(resp)
                events = frames(resp.content.iter_any(), self.name, self.config.max_event_bytes)
                async for batch in events:
                    yield batch
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            raise translate(self.name, exc) from exc


def anthropic_status_error(
    upstream: str, status: int, raw: bytes, headers: Mapping[str, str]
) -> UpstreamStatusError:
    """:func:`status_error`, except Anthropic's 529 (overloaded) answers a retryable 503."""
    err = status_error(upstream, status, raw, headers)
    if status != 529:
        return err
    overloaded = UpstreamStatusError(
        f"upstream {upstream!r} is overloaded (529): {err.body}; retry later or route to "
        "another model",
        upstream=upstream,
        status=503,
        body=err.body,
        retry_after=err.retry_after,
    )
    overloaded.upstream_status = 529  # type: ignore[attr-defined]
    overloaded.retryable = True
    return overloaded
