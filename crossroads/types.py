"""The vocabulary of crossroads: plain data, no logic.

A request arrives in one wire format (:mod:`crossroads.formats`), is parsed once into a
:class:`Request`, and leaves for an upstream in that upstream's format; the answer comes back
as a :class:`Response` (or a stream of :class:`StreamEvent`) and is rendered in the client's
format. ``wire`` / ``raw`` keep the original JSON so that when the client's and the
upstream's formats are the same, unknown provider fields pass through unchanged.

The types a :class:`Trace` is made of have no ``__slots__``: orjson encodes a dataclass that
keeps its fields in ``__dict__`` in C, and a slotted one for about twice the instructions
(each object an AttributeError built and dropped, then a walk of its fields). The request
path encodes every trace it records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from crossroads.config.tenants import PolicyConfig

SignalValue = bool | int | float | str | None


@dataclass(frozen=True, slots=True)
class ValueSpec:
    """What a signal's value is, so that rules can compare it and config load can check them.

    ``type`` is ``number`` (in ``[low, high]``), ``count`` (a whole number in ``[low, high]``),
    ``label`` (one of ``labels``; ``None``: any string), ``flag`` (true/false) or ``record``
    (a mapping whose ``fields`` rules name: ``pii:found.count``). ``nullable``: the value may
    be absent though the signal ran (a budget signal for a caller without budgets).
    ``matched_when``: the comparisons of the value that all hold exactly when the signal
    matches, e.g. ``((">=", 0.5),)`` (``()``: it always matches; ``None``: not a function of
    the value), so that ``crossroads validate`` relates ``kind:name`` to comparisons of it.
    """

    type: Literal["number", "count", "label", "flag", "record"]
    low: float = float("-inf")
    high: float = float("inf")
    labels: frozenset[str] | None = None
    fields: tuple[tuple[str, ValueSpec], ...] = ()
    nullable: bool = False
    matched_when: tuple[tuple[str, Any], ...] | None = None


Operation = Literal["chat", "completions", "embeddings"]
"""What a request asks for: a chat turn, a text completion, embeddings."""
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
EmbeddingWindow = Literal["head", "tail", "head_tail"]
"""What the encoder reads of a text longer than its window: the first tokens, the last ones,
or both ends (the start and the question that few-shot prompts put at the end)."""


@dataclass(slots=True)
class Part:
    """One part of a message's content: text, an image (URL or base64 data), or a provider
    part crossroads does not model (``raw``, passed on only to the same format)."""

    type: Literal["text", "image", "other"]
    text: str = ""
    url: str | None = None
    media_type: str | None = None
    data: str | None = None  # base64 image bytes
    raw: dict[str, Any] | None = None


@dataclass(slots=True)
class ToolCall:
    """A call the model made: ``arguments`` is the JSON text of the call's input."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(slots=True)
class Message:
    """One turn. ``content`` is a string or a list of parts; a ``tool`` message answers the
    call ``tool_call_id``."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[Part] = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class Tool:
    """A function the model may call; ``parameters`` is its JSON schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


@dataclass(slots=True)
class ResponseFormat:
    """Structured output: free text, any JSON object, or JSON matching ``schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(slots=True)
class Request:
    """A request in no particular wire format. ``tool_choice`` is ``auto``, ``none``,
    ``required`` or the name of one tool; ``prompt`` is the text (or token ids) of a
    completion; ``input`` the items of an embeddings request."""

    operation: Operation
    model: str
    source: str  # the format it arrived in, e.g. "openai_chat"
    messages: list[Message] = field(default_factory=list)
    prompt: str | list[str] | list[int] | list[list[int]] | None = None
    input: Any = None
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False  # the client asked for a usage event at the end of a stream
    user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    wire: dict[str, Any] | None = None  # the body as received, for same-format pass-through
    logprobs: int | None = None  # ask the upstream for token logprobs, with this many top
    # alternatives per token (set by a plan whose acceptance reads confidence)


@dataclass(slots=True)
class Choice:
    """One answer of a response."""

    index: int = 0
    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: the first piece of call ``index`` has ``id`` and
    ``name``, later ones more ``arguments`` text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamEvent:
    """One event of a streamed answer, in no particular format. ``raw`` is the SSE frame as
    the upstream sent it (forwarded as-is when the client speaks the same format)."""

    index: int = 0
    role: str | None = None
    text: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    id: str | None = None
    model: str | None = None
    raw: bytes | None = None
    done: bool = False  # the upstream's end of stream
    usage_only: bool = False  # carries nothing but usage (forwarded only if asked for)


@dataclass(slots=True)
class Caller:
    """Who sent a request: API key name, OpenAI ``user`` field, lower-cased headers."""

    key_name: str | None = None
    user: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    team: str | None = None
    policy: PolicyConfig | None = None  # the key's own policy
    team_policy: PolicyConfig | None = None  # its team's, shared by the team's keys


@dataclass
class RecordedCaller:
    """What a trace keeps of the caller (each field bounded; no policy, no credentials)."""

    key_name: str | None = None
    user: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    team: str | None = None


@dataclass(slots=True)
class RoutingRequest:
    """What signals and selection see of a request: the parsed body plus caller facts."""

    request: Request | None = None
    operation: Operation = "chat"
    caller: Caller = field(default_factory=Caller)
    text: str = ""  # all message text, for keyword/token signals
    last_user_text: str = ""
    prompt_tokens: int = 0
    max_output_tokens: int | None = None
    needs: frozenset[str] = frozenset()  # capabilities the request uses: tools, vision, json
    budget_remaining: float | None = None  # of the caller's tightest budget (budget signals)
    trace_id: str | None = None  # of the request's trace (online selection remembers it)
    signals: dict[str, SignalResult] | None = None  # computed signals, for selection features
    vector: Any = None  # the default embedding of ``prompt``, computed once and shared

    @property
    def prompt(self) -> str:
        """What selection embeds and scores: the last user message, else all the text."""
        return self.last_user_text or self.text


@dataclass
class SignalResult:
    """One signal's value for one request; ``matched`` is what rules test."""

    name: str  # "kind:name"
    matched: bool
    value: SignalValue = None
    detail: str | None = None
    elapsed_ms: float = 0.0
    error: str | None = None
    timed_out: bool = False  # an asynchronous signal that ran past its ``timeout_ms``


@dataclass
class Candidate:
    """A candidate model of a decision, with its estimated cost and whether it can serve."""

    model: str
    estimated_cost: float = 0.0
    eligible: bool = True
    reason: str | None = None  # why not eligible
    score: float | None = None  # selection score, when the method computes one
    propensity: float | None = None  # probability a randomised method chose it


@dataclass
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
    started_at: float = 0.0  # wall-clock time (epoch s) routing started
    propensity: float | None = None  # probability the selection chose ``model`` (off-policy
    # evaluation reads it; 1.0 for a method that does not randomise; None: unknown)
    shadow: ShadowChoice | None = None  # a candidate router's would-be choice, not served


@dataclass
class ShadowChoice:
    """What a shadow router (``selection.shadow``) would have chosen for the request: scored
    after the served choice, never served. ``estimated_cost`` is in the artifact's unit."""

    artifact: str  # the artifact's resolved path
    model: str
    estimated_cost: float | None = None
    quality: float | None = None  # its predicted quality of that model
    elapsed_ms: float = 0.0
    error: str | None = None  # scoring failed (the served request went on)


@dataclass
class Usage:
    """Token usage reported by an upstream."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # counted by crossroads: the upstream reported no usage


@dataclass(slots=True)
class Response:
    """A complete answer. ``raw`` is the body as the upstream sent it, in format ``source``
    (forwarded as-is when the client speaks the same format)."""

    id: str
    model: str | None
    created: int
    choices: list[Choice] = field(default_factory=list)
    usage: Usage | None = None
    source: str = ""
    raw: bytes | None = None


@dataclass
class Attempt:
    """One try at one upstream endpoint; ``at_ms``: when it began, in ms after the request
    arrived (``Trace.created_at``)."""

    model: str
    upstream: str
    outcome: Literal["ok", "error"]
    latency_ms: float
    error: str | None = None
    status: int | None = None
    at_ms: float | None = None
    category: str | None = None  # of a failure: timeout, connect, protocol, http_<status>, error
    span_id: str | None = None  # its OpenTelemetry span, sent upstream in ``traceparent``


@dataclass
class StageCall:
    """One model call of a multi-call plan (a cascade stage's branch, a fan-out branch, a
    judge): what it cost, how long it took, and what the plan made of its answer.

    ``verdict``: ``accepted`` (its answer was served), ``rejected`` (an acceptance rule
    said no: the plan went on), ``lost`` (another branch's answer was chosen), ``error``
    (the call failed), ``cancelled`` (stopped before it answered: a faster branch won),
    ``judge`` (it chose among the others); ``reason`` says why, ``score`` is the number
    the rule compared (agreement share, confidence, verifier probability)."""

    stage: int
    model: str
    verdict: Literal["accepted", "rejected", "lost", "error", "cancelled", "judge"]
    latency_ms: float
    usage: Usage | None = None
    cost: float | None = None
    reason: str | None = None
    score: float | None = None
    upstream: str | None = None


@dataclass
class RateWindow:
    """One rate limit of the caller as it stood after the request was counted."""

    scope: str  # "key:ci" or "team:search"
    unit: Literal["requests", "tokens"]
    limit: int
    remaining: int
    reset_s: float  # until the window ends


@dataclass
class Reservation:
    """The request's estimated cost held against the caller's budgets before dispatch, and
    the actual cost settled after (``settled_usd``). ``budgets`` name them, e.g.
    ``team:search/day``; ``keys`` are their state keys; ``token_keys`` the tpm windows that
    counted ``tokens`` at admission."""

    hold_id: str
    model: str
    reserved_usd: float
    budgets: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    remaining_usd: float | None = None  # of the tightest budget, once this hold is taken
    downgraded_from: str | None = None  # on_budget: downgrade chose a cheaper model
    tokens: int = 0
    token_keys: list[str] = field(default_factory=list)
    settled_usd: float | None = None
    error: str | None = None  # the state backend failed and the request went on (fail-open)


@dataclass(slots=True)
class Feedback:
    """A reward for one answered request, from one ``source`` (a client, a grader, a user's
    thumbs): ``reward`` in [0, 1]; ``label`` the thumbs or named label it was given as.
    One per (``trace_id``, ``source``): see :mod:`crossroads.feedback`."""

    trace_id: str
    reward: float
    source: str = "client"
    label: str | None = None
    comment: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    key_name: str | None = None  # the API key that sent it (None: admin or no auth)


@dataclass
class Trace:
    """Everything the gateway knows about one request, stored off the request path."""

    trace_id: str
    created_at: float
    requested_model: str
    operation: Operation
    stream: bool
    format: str = "openai_chat"  # the client's wire format
    route: Route | None = None
    model: str | None = None  # the model that answered (differs from route.model after a fallback)
    upstream: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    status: int = 200
    error: str | None = None
    error_code: str | None = None  # the error's ``code`` as the client read it
    attempts: list[Attempt] = field(default_factory=list)
    caller: Caller | RecordedCaller | None = None
    plan: str | None = None  # a multi-call plan's kind ("cascade", "fanout"), else one call
    stages: list[StageCall] | None = None  # every call of that plan; usage and cost sum them
    cache: str | None = None  # a semantic cache's outcome: "hit", "miss", "store"
    reservation: Reservation | None = None
    rate_limits: list[RateWindow] | None = None
    prompt: str | None = None  # the last user message, kept when ``store.prompts`` is on
    # the outcome of the feedback this request carried in its metadata (``accepted``,
    # ``duplicate`` or the error's code); the feedback is for another trace
    feedback: str | None = None
