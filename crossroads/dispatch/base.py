"""The upstream protocol: ``complete``, ``stream``, ``aclose``, like an httpx transport.

An upstream names the wire format it speaks for each operation (``formats``: a module of
:mod:`crossroads.formats`); the dispatcher encodes the canonical request in that format, and
the engine reads the answer with the same module. Errors are :class:`UpstreamError`
subclasses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from crossroads.types import Operation, Usage


@dataclass(slots=True)
class Completion:
    """A non-streamed answer: the raw body to forward and what we read from it."""

    body: bytes
    usage: Usage | None


class Upstream:
    """A provider the gateway calls. ``body`` is in the upstream's format for the operation
    and already names the upstream's model id."""

    name: str
    # operation -> the wire format of its bodies, answers and streams
    formats: dict[str, str] = {
        "chat": "openai_chat",
        "completions": "openai_completions",
        "embeddings": "openai_embeddings",
    }

    # Whether complete() takes ``within=`` (seconds) and ends the call by then with an
    # UpstreamTimeoutError; otherwise the dispatcher holds the deadline with a timer of its own.
    deadlines = False

    async def complete(self, operation: Operation, body: dict[str, Any]) -> Completion:
        """One non-streamed call; raises an :class:`~crossroads.exceptions.UpstreamError`."""
        raise NotImplementedError

    def stream(self, operation: Operation, body: dict[str, Any]) -> AsyncIterator[bytes]:
        """Server-sent events in batches: each item holds one or more complete events (all
        that one upstream read delivered), ending with the format's last event. Closing the
        iterator cancels the upstream call."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""
