"""The vocabulary of crossroads: plain data, no logic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SignalValue = bool | int | float | str | None
Endpoint = Literal["chat", "completions"]


@dataclass(slots=True)
class Caller:
    """Who sent a request: API key name, OpenAI ``user`` field, lower-cased headers."""

    key_name: str | None = None
    user: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RoutingRequest:
    """What signals and selection see of a request: the parsed body plus caller facts."""

    body: dict[str, Any]
    endpoint: Endpoint = "chat"
    caller: Caller = field(default_factory=Caller)
    text: str = ""  # all message text, for keyword/token signals
    last_user_text: str = ""
    prompt_tokens: int = 0
    max_output_tokens: int | None = None
    needs: frozenset[str] = frozenset()  # capabilities the request uses: tools, vision, json


@dataclass(slots=True)
class SignalResult:
    """One signal's value for one request; ``matched`` is what rules test."""

    name: str  # "kind:name"
    matched: bool
    value: SignalValue = None
    detail: str | None = None
    elapsed_ms: float = 0.0
    error: str | None = None


@dataclass(slots=True)
class Candidate:
    """A candidate model of a decision, with its estimated cost and whether it can serve."""

    model: str
    estimated_cost: float = 0.0
    eligible: bool = True
    reason: str | None = None  # why not eligible
    score: float | None = None  # selection score, when the method computes one


@dataclass(slots=True)
class Route:
    """The routing outcome: the decision that matched, its candidates, the chosen model."""

    model: str
    decision: str
    selection: str
    rule_path: list[str] = field(default_factory=list)
    signals: dict[str, SignalResult] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    estimated_cost: float = 0.0
    prompt_tokens_estimate: int = 0
    routing_ms: float = 0.0


@dataclass(slots=True)
class Usage:
    """Token usage reported by an upstream."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # counted by crossroads: the upstream reported no usage


@dataclass(slots=True)
class Attempt:
    """One try at one upstream endpoint."""

    model: str
    upstream: str
    outcome: Literal["ok", "error"]
    latency_ms: float
    error: str | None = None
    status: int | None = None


@dataclass(slots=True)
class Trace:
    """Everything the gateway knows about one request, stored off the request path."""

    trace_id: str
    created_at: float
    requested_model: str
    endpoint: Endpoint
    stream: bool
    route: Route | None = None
    model: str | None = None  # the model that answered (differs from route.model after a fallback)
    upstream: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    status: int = 200
    error: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    caller: Caller | None = None
