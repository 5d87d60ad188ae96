"""What a wire format provides, and the lookup by name."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from crossroads.exceptions import InvalidRequestError
from crossroads.types import Request, Response, StreamEvent, Usage


class StreamEncoder(Protocol):
    """Renders canonical stream events as one format's SSE frames."""

    def start(self) -> bytes:
        """Frames that open the stream (may be empty)."""
        ...

    def encode(self, event: StreamEvent) -> bytes:
        """Frames for one event (often empty)."""
        ...

    def finish(self, usage: Usage | None) -> bytes:
        """Frames that end the stream, with the settled usage."""
        ...

    def error(self, status: int, payload: bytes) -> bytes:
        """An error event (``payload``: this format's error body) after the stream started,
        then the end of the stream."""
        ...


class Format(Protocol):
    """One wire format (a module of :mod:`crossroads.formats`)."""

    NAME: str

    def parse_request(self, body: dict[str, Any]) -> Request: ...

    def render_response(self, response: Response, request: Request) -> bytes: ...

    def stream_encoder(self, request: Request, trace_id: str) -> StreamEncoder: ...

    def error_body(
        self, status: int, message: str, error_type: str, code: str | None, param: Any
    ) -> bytes: ...


_MODULES = {
    "openai_chat": "crossroads.formats.openai_chat",
    "openai_completions": "crossroads.formats.openai_completions",
    "openai_responses": "crossroads.formats.openai_responses",
    "openai_embeddings": "crossroads.formats.openai_embeddings",
    "anthropic_messages": "crossroads.formats.anthropic_messages",
}


_LOADED: dict[str, Any] = {}


def get_format(name: str) -> Any:
    """The module of format ``name`` (imported on first use; a dict lookup after)."""
    module = _LOADED.get(name)
    if module is None:
        module = _LOADED[name] = import_module(_MODULES[name])
    return module


def load_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not raw.strip():
        raise InvalidRequestError("The request body is empty: send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"The request body is not valid JSON ({exc}). Check quoting and commas."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequestError(
            f"The request body must be a JSON object, not {type(body).__name__}."
        )
    return body


def validate(model: type[BaseModel] | TypeAdapter[Any], body: dict[str, Any]) -> None:
    """Check ``body`` against ``model`` (a model class, or an adapter of a TypedDict); the
    first problem becomes a 400 naming the field."""
    try:
        if isinstance(model, TypeAdapter):
            model.validate_python(body)
        else:
            model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = min(errors, key=lambda e: len(e["loc"]))
        if first["loc"] and first["loc"][-1] == "str":
            # "a string or a list of parts" failed as both: the list's own problem (deeper)
            # says what is wrong, not "should be a valid string".
            prefix = first["loc"][:-1]
            deeper = [e for e in errors if len(e["loc"]) > len(first["loc"])]
            deeper = [e for e in deeper if tuple(e["loc"][: len(prefix)]) == tuple(prefix)]
            if deeper:
                first = max(deeper, key=lambda e: len(e["loc"]))
        param = field_path(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            msg = "this field is required"
        more = (
            f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
            if len(errors) > 1
            else ""
        )
        raise InvalidRequestError(f"Invalid '{param}': {msg}{more}.", param=param) from None


def field_path(loc: tuple[Any, ...]) -> str:
    """``messages[0].content`` for pydantic's error location, without its union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _is_tag(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _is_tag(part: str) -> bool:
    # Union members and validators show up in error locations: "str", "list[int]",
    # "function-after[...]", "tagged-union[...]", "literal['a','b']", class names.
    return (
        part in ("str", "int", "float", "bool", "dict", "list")
        or part.startswith(("list[", "dict[", "function-", "tagged-union[", "literal[", "json-or"))
        or (part[:1].isupper() and part.isidentifier())
        or part in _PART_TYPES
    )


_PART_TYPES = frozenset(
    {
        "text",
        "image_url",
        "input_audio",
        "file",
        "refusal",
        "input_image",
        "input_text",
        "input_file",
        "image",
        "tool_use",
        "tool_result",
        "document",
        "message",
        "function_call",
        "function_call_output",
    }
)


def max_tokens(asked: int | None, cap: int | None) -> int | None:
    """The output limit sent upstream: what the client asked, never above the model's cap."""
    if cap is None:
        return asked
    return cap if asked is None else min(asked, cap)


def answer_object(raw: bytes, upstream: str, field: str) -> dict[str, Any]:
    """An upstream's JSON answer, a JSON object whose ``field`` is a list; anything else is
    the upstream's protocol error."""
    from crossroads.exceptions import UpstreamProtocolError

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(
            f"upstream {upstream!r} answered with invalid JSON ({exc}): {raw[:200]!r}",
            upstream=upstream,
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get(field), list):
        raise UpstreamProtocolError(
            f"upstream {upstream!r} answered JSON without a {field!r} list: {raw[:200]!r}",
            upstream=upstream,
        )
    return data


def json_text(value: Any, where: str) -> str:
    """``value`` as JSON text (a tool call's input, a tool's output); a 400 naming ``where``
    when JSON cannot hold it (nested past the encoder's depth limit, a huge integer)."""
    from crossroads.exceptions import InvalidRequestError

    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise InvalidRequestError(
            f"Invalid '{where}': it cannot be encoded as JSON ({exc}).", param=where
        ) from None


def bound_decoder(
    decode_event: Callable[[bytes, bytes, str], StreamEvent], upstream: str
) -> Callable[[bytes, bytes], StreamEvent]:
    """A stateless format's ``decode_event`` bound to one upstream's name, the decoder of one
    upstream stream: ``decode(frame, data)`` → one canonical event."""

    def decode(frame: bytes, data: bytes) -> StreamEvent:
        return decode_event(frame, data, upstream)

    return decode


_NUMBERS = (int, float)  # a tuple: ``int | float`` would build a union at every call


def token_count(value: Any) -> int:
    """A token count an upstream reports: a non-negative integer below 2**53, else 0."""
    if type(value) is int and 0 <= value < 2**53:  # the usual answer, checked at once
        return value
    if isinstance(value, bool) or not isinstance(value, _NUMBERS):
        return 0
    if value != value or value < 0 or value >= 2**53:
        return 0
    return int(value)
