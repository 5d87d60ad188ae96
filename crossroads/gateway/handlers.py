"""One thin handler per wire format: parse the body into a canonical request, let the engine
serve it, render the answer (or the stream, or the error) in the client's format."""

from __future__ import annotations

import logging
from typing import Any

from crossroads.dispatch.errors import failure_category
from crossroads.engine import Engine, EngineStream
from crossroads.exceptions import ClientGoneError
from crossroads.gateway.errors import error_code, render
from crossroads.limits import ratelimit_headers
from crossroads.types import Caller, Request, Trace

log = logging.getLogger("crossroads.gateway")

Send = Any
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
JSON_HEADERS = [(b"content-type", b"application/json")]


def routing_headers(trace: Trace) -> list[tuple[bytes, bytes]]:
    """The ``x-crossroads-*`` headers of an answer: trace id, decision, model, attempts."""
    headers = [(b"x-crossroads-trace-id", trace.trace_id.encode())]
    if trace.route is not None:
        headers.append((b"x-crossroads-decision", trace.route.decision.encode()))
        headers.append((b"x-crossroads-model", (trace.model or trace.route.model).encode()))
    if len(trace.attempts) > 1:
        headers.append((b"x-crossroads-attempts", str(len(trace.attempts)).encode()))
    if trace.rate_limits:
        headers += ratelimit_headers(trace.rate_limits)
    if trace.feedback is not None:
        headers.append((b"x-crossroads-feedback", trace.feedback.encode()))
    return headers


class FormatHandler:
    """Serves one wire format (a module of :mod:`crossroads.formats`) through the engine."""

    def __init__(self, fmt: Any, engine: Engine) -> None:
        self.fmt = fmt
        self.engine = engine

    def parse(self, raw: bytes) -> Request:
        """The canonical request of a raw body (a 400 names the field)."""
        request: Request = self.fmt.parse(raw)
        return request

    async def serve(
        self, request: Request, caller: Caller, trace: Trace, send: Send, start: float
    ) -> None:
        """Route, dispatch and answer ``request``; raises only before the response started."""
        trace.requested_model = request.model
        trace.stream = request.stream
        answer = await self.engine.serve(request, caller, trace, start)
        if isinstance(answer, EngineStream):
            await self._relay(answer, request, trace, send)
            return
        body = self.fmt.render_response(answer, request)
        await send_body(send, 200, body, JSON_HEADERS + routing_headers(trace))

    def error(
        self, exc: BaseException, trace_id: str | None = None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Status, body (in this format's error shape) and headers for ``exc``."""
        status, payload, extra = render(exc, self.fmt.error_body, trace_id)
        return status, payload, [(k.encode(), v.encode()) for k, v in extra.items()]

    async def _relay(
        self, stream: EngineStream, request: Request, trace: Trace, send: Send
    ) -> None:
        # Same format on both sides: forward the upstream's bytes as they are, so unknown
        # provider fields pass through; otherwise render canonical events in the client's
        # format. One write per upstream read; the end of the response leaves with the last.
        ok, failure, ended = False, None, False
        encoder = None
        try:
            await _write(
                send,
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": SSE_HEADERS + routing_headers(trace),
                },
            )
            try:
                if stream.passthrough:
                    wants_usage = request.include_usage
                    while not ended:
                        body = await stream.forward(wants_usage)
                        ended = stream.done
                        if not (body or ended):
                            continue
                        message = {
                            "type": "http.response.body",
                            "body": body,
                            "more_body": not ended,
                        }
                        try:  # (``_write`` inline: this runs once per upstream read)
                            await send(message)
                        except ClientGoneError:
                            raise
                        except Exception as exc:
                            raise ClientGoneError("the client disconnected") from exc
                else:
                    encoder = self.fmt.stream_encoder(request, trace.trace_id)
                    await _render(stream, encoder, trace, send)
                    ended = True
                ok = True
            except ClientGoneError:
                raise
            except Exception as exc:  # after the start line, errors travel inside the stream
                status, payload, _ = render(exc, self.fmt.error_body, trace.trace_id)
                trace.status, trace.error, trace.error_code = status, str(exc), error_code(exc)
                failure = failure_category(exc)
                encoder = encoder or self.fmt.stream_encoder(request, trace.trace_id)
                body = encoder.error(status, payload)
                await _write(send, {"type": "http.response.body", "body": body, "more_body": False})
        except ClientGoneError:
            if not ok:
                trace.status = 499
                trace.error = "client disconnected mid-stream; upstream call cancelled"
        finally:
            await stream.aclose(ok, failure)


async def _render(stream: EngineStream, encoder: Any, trace: Trace, send: Send) -> None:
    """Canonical events in the client's format (``encoder``), to the end of the response."""
    opening = encoder.start()
    out = [opening] if opening else []
    async for events in stream.batches():
        for event in events:
            if not event.done:
                chunk = encoder.encode(event)
                if chunk:
                    out.append(chunk)
        if stream.done:
            out.append(encoder.finish(trace.usage))
            break
        if out:
            await _write(
                send, {"type": "http.response.body", "body": b"".join(out), "more_body": True}
            )
            out = []
    await _write(send, {"type": "http.response.body", "body": b"".join(out), "more_body": False})


async def _write(send: Send, message: dict[str, Any]) -> None:
    """One ASGI message of a stream; a failed write means the client is gone."""
    try:
        await send(message)
    except ClientGoneError:
        raise
    except Exception as exc:  # the ASGI server could not write: the client is gone
        raise ClientGoneError("the client disconnected") from exc


async def send_body(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """A whole response: in one call when the server offers one (the gateway's protocol:
    ``respond`` beside its ``send``), else in two ASGI messages."""
    respond = getattr(getattr(send, "__self__", None), "respond", None)
    if respond is not None:
        respond(status, headers, body)
        return
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
