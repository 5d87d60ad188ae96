"""The upstream protocol: ``complete``, ``stream``, ``aclose``, like an httpx transport.

Bodies in and out are OpenAI-shaped whatever the provider: an upstream that speaks another
API (Anthropic) translates at this boundary. Errors are :class:`UpstreamError` subclasses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from crossroads.types import Endpoint, Usage


@dataclass(slots=True)
class Completion:
    """A non-streamed answer: the raw body to forward and what we read from it."""

    body: bytes
    usage: Usage | None


class Upstream:
    """A provider the gateway calls. ``body`` already names the upstream's model id."""

    name: str

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        """One non-streamed call; raises an :class:`~crossroads.exceptions.UpstreamError`."""
        raise NotImplementedError

    def stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[bytes]:
        """Server-sent events in batches: each item holds one or more complete
        ``data: ...\\n\\n`` events (all that one upstream read delivered); the last event is
        ``data: [DONE]``. Closing the iterator cancels the upstream call."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""
