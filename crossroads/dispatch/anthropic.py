"""The Anthropic upstream: OpenAI chat bodies in and out, Anthropic's Messages API on the wire,
on one pooled aiohttp session per upstream. The mappings live in
:mod:`crossroads.dispatch.anthropic_translate`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from crossroads.dispatch.anthropic_stream import StreamTranslator
from crossroads.dispatch.anthropic_translate import to_anthropic, to_openai, unsupported
from crossroads.dispatch.base import Completion
from crossroads.dispatch.errors import is_success, status_error, translate
from crossroads.dispatch.http import HTTPUpstream
from crossroads.dispatch.sse import event_data, frames, split_events
from crossroads.exceptions import RequestEncodingError, UpstreamProtocolError, UpstreamStatusError
from crossroads.types import Endpoint

MESSAGES_PATH = "/v1/messages"


class AnthropicUpstream(HTTPUpstream):
    """Calls ``{base_url}/v1/messages``; only the ``chat`` endpoint exists on Anthropic."""

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.api_version, **super()._headers()}
        key = self.api_key()
        if key:
            headers["x-api-key"] = key
        return headers

    def _request(self, endpoint: Endpoint, body: dict[str, Any], stream: bool) -> bytes:
        if endpoint != "chat":
            raise unsupported(
                self.name,
                f"the /{endpoint} endpoint does not exist on Anthropic's Messages API: "
                "send the prompt to /v1/chat/completions, or route this model's "
                f"{endpoint} requests elsewhere",
            )
        try:
            request = {**to_anthropic(body, self.config), "stream": stream}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RequestEncodingError(
                f"The request cannot be expressed for Anthropic upstream {self.name!r} "
                f"({type(exc).__name__}: {exc}): check tool calls and content parts."
            ) from None
        return self.encode(request)

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        payload = self._request(endpoint, body, stream=False)
        session = self._client()
        try:
            async with session.post(
                self.config.base_url + MESSAGES_PATH, data=payload, allow_redirects=False
            ) as resp:
                raw = await self.read_body(resp)
                if not is_success(resp.status):
                    raise anthropic_status_error(self.name, resp.status, raw, resp.headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise translate(self.name, exc) from exc
        data = self.parse_body(raw)
        completion, usage = to_openai(data, self.name)
        return Completion(orjson.dumps(completion), usage)

    async def stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[bytes]:
        payload = self._request(endpoint, body, stream=True)
        session = self._client()
        translator = StreamTranslator(self.name)
        try:
            async with session.post(
                self.config.base_url + MESSAGES_PATH, data=payload, allow_redirects=False
            ) as resp:
                if not is_success(resp.status):
                    raise anthropic_status_error(
                        self.name, resp.status, await self.read_body(resp), resp.headers
                    )
                self.check_encoding(resp)
                events = frames(resp.content.iter_any(), self.name, self.config.max_event_bytes)
                async for batch in events:
                    out = [
                        chunk
                        for frame in split_events(batch)
                        for chunk in translator.feed(self._event(frame))
                    ]
                    if out:
                        yield b"".join(out)
                    if translator.finished:
                        return
            raise UpstreamProtocolError(
                f"upstream {self.name!r} ended the stream without 'message_stop': "
                "the answer is incomplete",
                upstream=self.name,
            )
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            raise translate(self.name, exc) from exc

    def _event(self, frame: bytes) -> dict[str, Any]:
        data = event_data(frame)
        if not data:
            return {}  # comments and keep-alives
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                f"upstream {self.name!r} sent a stream event that is not JSON: {data[:200]!r}",
                upstream=self.name,
            ) from None
        return event if isinstance(event, dict) else {}


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
