"""OpenAI Embeddings: ``POST /v1/embeddings``, passed to models that serve ``embeddings``
(``serves: [embeddings]``) on OpenAI-compatible upstreams; the answer passes through."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crossroads.dispatch.sse import shape_checked
from crossroads.exceptions import UpstreamProtocolError
from crossroads.formats.base import load_json, validate
from crossroads.formats.openai_chat import error_body, usage_from
from crossroads.types import Request, Response

NAME = "openai_embeddings"
__all__ = ["NAME", "error_body", "parse", "render_response"]


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


def parse(raw: bytes) -> Request:
    """The canonical request for a raw body; a 400 names the field to fix."""
    body = load_json(raw)
    validate(EmbeddingsBody, body)
    if body["input"] in ("", []):
        from crossroads.exceptions import InvalidRequestError

        raise InvalidRequestError("Invalid 'input': it must not be empty.", param="input")
    return Request(
        operation="embeddings",
        model=body["model"],
        source=NAME,
        input=body["input"],
        user=body.get("user"),
        wire=body,
    )


def encode_request(request: Request, model_id: str, cap: int | None) -> dict[str, Any]:
    """The body for an OpenAI-compatible upstream's ``/embeddings``."""
    if request.wire is not None and request.source == NAME:
        return {**request.wire, "model": model_id}
    return {"model": model_id, "input": request.input}


@shape_checked
def parse_response(raw: bytes, upstream: str) -> Response:
    """The embeddings answer: only its usage is read."""
    import orjson

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise UpstreamProtocolError(
            f"upstream {upstream!r} answered no JSON object with 'data': {raw[:200]!r}",
            upstream=upstream,
        )
    return Response(
        "", data.get("model"), int(time.time()), usage=usage_from(data), source=NAME, raw=raw
    )


def render_response(response: Response, request: Request) -> bytes:
    """The upstream's answer, unchanged."""
    assert response.raw is not None
    return response.raw
