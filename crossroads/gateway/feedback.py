"""``POST /v1/crossroads/feedback``: a reward for an answered request, kept with its trace.

The body is ``{trace_id, reward, source?, comment?, metadata?}`` (:mod:`crossroads.feedback`).
The caller's API key must be the one that sent the traced request, or the admin key; with
no keys configured anyone may send feedback. A new reward goes to the decision's selector
(:meth:`~crossroads.engine.Engine.observe`) so that online learners update.

Answers: 200 with the stored feedback (the same body for a repeat; the header
``x-crossroads-feedback`` says ``accepted`` or ``duplicate``), 400 (malformed), 401 (no or
unknown key), 403 (another key's trace), 404 (no such trace), 409 (a different reward for a
(trace, source) that has one), 413 (body over ``feedback.max_body_bytes``), 422 (a reward
outside [0, 1] or an unknown label).

Inline: a model request may carry feedback for an earlier trace in its metadata,
``metadata: {"crossroads_feedback": "<the same JSON object, as a string>"}`` (metadata
values are strings in the OpenAI API). It is taken before the request is served, is removed
from what the upstream receives, and its outcome is the request's ``x-crossroads-feedback``
header (``accepted``, ``duplicate`` or the error's code): the request itself is served
either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from crossroads.exceptions import (
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PolicyDeniedError,
    RequestError,
)
from crossroads.feedback import parse_feedback
from crossroads.gateway.errors import error_code, render
from crossroads.gateway.handlers import send_body

if TYPE_CHECKING:
    from crossroads.gateway.app import Gateway
    from crossroads.types import Feedback, Request

log = logging.getLogger("crossroads.feedback")

FEEDBACK_PATHS = ("/v1/crossroads/feedback", "/crossroads/feedback")
INLINE_KEY = "crossroads_feedback"
JSON_HEADERS = [(b"content-type", b"application/json")]
POLL_S = 0.05  # how often a trace not found yet is looked for again
# With several workers, a trace another worker answered is in that worker's writer queue for
# up to a flush interval: a trace not found is looked for again for two of them, plus this.
# One worker finds its own queued traces at once (BatchedTraceStore.get).
WAIT_EXTRA_S = 0.5


class FeedbackAPI:
    """Takes feedback for ``gateway``'s traces, from the API and from request metadata."""

    def __init__(self, gateway: Gateway, several_workers: bool = False) -> None:
        self.gateway = gateway
        self.several_workers = several_workers  # other processes write traces too

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowedError(f"Use POST for {scope['path']}.")
            key_name, admin = self._sender(scope)
            limit = self.gateway.config.feedback.max_body_bytes
            raw = await self.gateway._read_body(scope, receive, limit, "feedback.max_body_bytes")
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequestError(f"The body is not valid JSON: {exc}.") from None
            feedback = parse_feedback(
                body, self.gateway.config.feedback.labels, key_name, time.time()
            )
            answer, new = await self.accept(feedback, admin)
        except Exception as exc:
            status, payload, extra = render(exc)
            if status >= 500:
                log.error("feedback failed: %s", exc)
            headers = JSON_HEADERS + [(k.encode(), v.encode()) for k, v in extra.items()]
            return await send_body(send, status, payload, headers)
        outcome = b"accepted" if new else b"duplicate"
        headers = [*JSON_HEADERS, (b"x-crossroads-feedback", outcome)]
        await send_body(send, 200, orjson.dumps(answer), headers)

    def _sender(self, scope: dict[str, Any]) -> tuple[str | None, bool]:
        """The sending key's name and whether it is the admin key (401 if neither)."""
        gateway = self.gateway
        if gateway.admin_key is not None:
            from crossroads.gateway.app import _bearer

            digest = hashlib.sha256(_bearer(scope).encode()).digest()
            if hmac.compare_digest(digest, gateway.admin_key):
                return None, True
        caller = gateway._caller(scope)
        return caller.key_name, not gateway._auth

    async def accept(self, feedback: Feedback, admin: bool) -> tuple[dict[str, Any], bool]:
        """Store ``feedback`` for its trace (which the sender must own unless ``admin``):
        the answer's body and whether the feedback is new. A new reward is observed by the
        decision's selector."""
        trace = await asyncio.to_thread(self._find, feedback.trace_id)
        if trace is None:
            raise NotFoundError(
                f"No trace {feedback.trace_id!r}: send the x-crossroads-trace-id of an answer "
                "this gateway gave (traces past store.retention_days are gone).",
                param="trace_id",
            )
        owner = (trace.get("caller") or {}).get("key_name")
        if not admin and owner != feedback.key_name:
            raise PolicyDeniedError(
                f"Trace {feedback.trace_id} was sent with another API key: only that key or "
                "the admin key may send its feedback.",
                param="trace_id",
            )
        stored, new = await asyncio.to_thread(self.gateway.store.add_feedback, feedback)
        route = trace.get("route") or {}
        decision = route.get("decision")
        if new and decision is not None:
            try:
                await self.gateway.engine.observe(decision, feedback.trace_id, stored.reward)
            except Exception:  # a learner's failure must not lose the stored feedback
                log.exception("the selector of decision %r failed to observe a reward", decision)
        answer = {
            "object": "crossroads.feedback",
            "trace_id": stored.trace_id,
            "source": stored.source,
            "reward": stored.reward,
            "label": stored.label,
            "comment": stored.comment,
            "metadata": stored.metadata,
            "created_at": stored.created_at,
            "decision": decision,
            "model": trace.get("model") or route.get("model"),
        }
        return answer, new

    def _find(self, trace_id: str) -> dict[str, Any] | None:
        """The trace, looked for again for a while when not found and other workers may
        still hold it in their writer's queue."""
        store = self.gateway.store
        config = self.gateway.config
        wait = 0.0
        if self.several_workers:
            wait = 2 * config.store.flush_interval_ms / 1000 + WAIT_EXTRA_S
        deadline = time.monotonic() + wait
        while True:
            found = store.get(trace_id)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(POLL_S)

    async def inline(self, request: Request, key_name: str | None) -> str:
        """Take the feedback a model request carries in its metadata (removed from the
        request): ``accepted``, ``duplicate`` or the error's code."""
        raw = request.metadata.pop(INLINE_KEY)
        wire = request.wire
        if wire is not None and isinstance(wire.get("metadata"), dict):
            wire["metadata"] = {k: v for k, v in wire["metadata"].items() if k != INLINE_KEY}
            if not wire["metadata"]:
                del wire["metadata"]
        try:
            try:
                body = orjson.loads(raw) if isinstance(raw, str) else raw
            except orjson.JSONDecodeError as exc:
                raise InvalidRequestError(
                    f"metadata.{INLINE_KEY} is not a JSON object: {exc}."
                ) from None
            feedback = parse_feedback(
                body, self.gateway.config.feedback.labels, key_name, time.time()
            )
            _, new = await self.accept(feedback, admin=not self.gateway._auth)
        except RequestError as exc:
            log.info("inline feedback refused: %s", exc)
            return error_code(exc)
        return "accepted" if new else "duplicate"
