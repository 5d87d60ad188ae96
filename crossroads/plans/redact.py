"""The redaction plan: personal data and secrets masked before any model reads the request.

Every text of the request's messages (and a completion's prompt) goes through
:func:`crossroads.redact.mask_pii`; when something was masked the request is sent as
crossroads renders it, since the body as received still holds the original text. Then the
inner plan runs (one call when there is none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossroads.config.plans import RedactPlan
from crossroads.redact import mask_pii
from crossroads.types import Part, Request, Response, RoutingRequest, Trace

if TYPE_CHECKING:
    from crossroads.engine import Engine, EngineStream
    from crossroads.plans import Plan


class Redaction:
    """Runs a :class:`~crossroads.config.plans.RedactPlan` in front of ``inner``."""

    kind = "redact"

    def __init__(self, config: RedactPlan, inner: Plan | None = None) -> None:
        self.config = config
        self.inner = inner

    def prepare(self) -> Redaction:
        """Fix the types to mask (all when the config lists none)."""
        from crossroads.pii import PII_TYPES

        self.types_ = tuple(self.config.types) or PII_TYPES
        return self

    def redact(self, request: Request) -> int:
        """Mask ``request`` in place; how many findings were masked."""
        masked = 0
        for message in request.messages:
            if isinstance(message.content, str):
                message.content, n = mask_pii(message.content, self.types_)
                masked += n
                continue
            parts: list[Part] = message.content
            for part in parts:
                if part.type == "text" and part.text:
                    part.text, n = mask_pii(part.text, self.types_)
                    masked += n
        if isinstance(request.prompt, str):
            request.prompt, n = mask_pii(request.prompt, self.types_)
            masked += n
        if masked:
            request.wire = None  # the body as received still holds the original text
        return masked

    async def serve(
        self, engine: Engine, request: Request, facts: RoutingRequest, trace: Trace, start: float
    ) -> Response | EngineStream:
        """The inner plan's answer to the masked request."""
        self.redact(request)
        if self.inner is not None:
            return await self.inner.serve(engine, request, facts, trace, start)
        if request.stream:
            return await engine.open_stream(request, facts, trace, start)
        return await engine.complete(request, facts, trace, start)
