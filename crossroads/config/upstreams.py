"""Upstreams: the servers that run models, and how to reach them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from crossroads.config.base import _Strict, _tagged


class Timeouts(_Strict):
    """Seconds. ``first_byte``: until the response (or the first stream event) starts;
    ``read``: the longest wait for the next bytes (between stream chunks); ``total``: the
    whole call."""

    connect: float = Field(5.0, gt=0)
    first_byte: float = Field(120.0, gt=0)
    read: float = Field(300.0, gt=0)
    total: float = Field(600.0, gt=0)


class _UpstreamBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    base_url: str
    api_key_env: str | None = None
    headers: dict[str, str] = {}
    timeouts: Timeouts = Timeouts()
    max_connections: int = Field(1000, ge=1)
    max_response_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="The largest response body read from this upstream (a JSON answer, or "
        "the error body of a stream); a larger one, declared or sent, fails the call as the "
        "endpoint's protocol error before it is read into memory.",
    )
    max_event_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="The longest server-sent event of a stream from this upstream; an event "
        "that grows past it without ending fails the stream as the endpoint's protocol error.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "api_key must not be written in the config: put the key in an environment "
                "variable and name it with api_key_env (e.g. api_key_env: OPENAI_API_KEY)"
            )
        return data

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"base_url {value!r} must start with http:// or https://")
        return value.rstrip("/")


class OpenAIUpstreamConfig(_UpstreamBase):
    """Any OpenAI-compatible server: vLLM, Ollama, llama.cpp, SGLang, OpenAI, Azure-style URLs.

    ``base_url`` includes the version prefix (``http://host:8000/v1``); ``query`` adds
    query parameters such as Azure's ``api-version``; ``api_key_header`` switches the
    auth header (Azure uses ``api-key``).
    """

    kind: Literal["openai"] = "openai"
    query: dict[str, str] = {}
    api_key_header: str = "authorization"
    http_client: Literal["raw", "aiohttp"] = "raw"


class AnthropicUpstreamConfig(_UpstreamBase):
    """Anthropic's Messages API; requests and responses are translated from/to OpenAI's."""

    kind: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    api_version: str = "2023-06-01"
    default_max_tokens: int = Field(4096, ge=1)


class LocalUpstreamConfig(OpenAIUpstreamConfig):
    """A model bundled with crossroads (``crossroads.local``): ``crossroads serve`` runs it in
    its own llama.cpp server on a free loopback port and fills in ``base_url``."""

    kind: Literal["local"]  # type: ignore[assignment]
    model: str
    base_url: str = "http://127.0.0.1:0/v1"
    n_ctx: int = Field(2048, ge=256)
    n_threads: int = Field(1, ge=1)

    @field_validator("model")
    @classmethod
    def _bundled(cls, value: str) -> str:
        from crossroads.local.catalog import LOCAL_MODELS

        if value not in LOCAL_MODELS:
            raise ValueError(f"unknown local model {value!r}; bundled: {', '.join(LOCAL_MODELS)}")
        return value


class MockUpstreamConfig(_UpstreamBase):
    """An in-memory upstream (no socket): answers ``reply`` with ``{last}`` replaced by the
    last user message, streamed in ``chunks`` pieces. For tests, dry runs and plugin demos."""

    kind: Literal["mock"]
    base_url: str = "http://mock.invalid"
    reply: str = "echo: {last}"
    chunks: int = Field(3, ge=1)


if TYPE_CHECKING:
    Upstream = (
        OpenAIUpstreamConfig | AnthropicUpstreamConfig | LocalUpstreamConfig | MockUpstreamConfig
    )
else:
    from crossroads.registry import UPSTREAMS

    Upstream = _tagged(
        "kind",
        "openai",
        OpenAIUpstreamConfig,
        AnthropicUpstreamConfig,
        LocalUpstreamConfig,
        MockUpstreamConfig,
        plugins=UPSTREAMS,
    )
