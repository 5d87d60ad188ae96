"""The configuration schema (YAML → pydantic v2) and its loader.

A minimal config is ten lines::

    upstreams:
      - name: vllm
        base_url: http://127.0.0.1:8000/v1
    models:
      - name: small
        upstream: vllm
      - name: big
        upstream: vllm
        price: {input: 1.0, output: 3.0}
    default:
      models: [small]

Every problem is reported with its path in the YAML (``decisions[2].when.all[0]: ...``).
Secrets are never literals: upstreams name an environment variable (``api_key_env``).
``${VAR}`` and ``${VAR:-fallback}`` in string values are expanded from the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from crossroads.exceptions import ConfigError

CAPABILITIES = ("tools", "vision", "json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _tagged(key: str, default: str | None, *members: type[BaseModel]) -> Any:
    """A union chosen by ``key`` whose tags, ``<value>``, are dropped from error paths."""
    by_tag: dict[str, type[BaseModel]] = {}
    for member in members:
        for tag in member.model_fields[key].annotation.__args__:  # type: ignore[union-attr]
            by_tag[tag] = member
    expected = ", ".join(repr(t) for t in by_tag)

    def pick(value: Any) -> str | None:
        tag = value.get(key, default) if isinstance(value, dict) else getattr(value, key, None)
        return f"<{tag}>" if isinstance(tag, str) else None

    def known(value: Any) -> Any:
        tag = value.get(key) if isinstance(value, dict) else None
        if tag is not None and tag not in by_tag:
            raise ValueError(f"unknown {key} {tag!r}; expected one of {expected}")
        return value

    choices = tuple(Annotated[m, Tag(f"<{t}>")] for t, m in by_tag.items())
    return Annotated[
        Union[choices],  # type: ignore[valid-type]  # noqa: UP007
        Discriminator(
            pick,
            custom_error_type="missing_kind",
            custom_error_message=f"'{key}' is required: one of {expected}",
        ),
        BeforeValidator(known),
    ]


# --------------------------------------------------------------------------- server, store


class ApiKey(_Strict):
    """A client API key, read from an environment variable; ``name`` is what traces show."""

    name: str
    key_env: str


class ServerConfig(_Strict):
    """Where and how the gateway listens."""

    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    api_keys: list[ApiKey] = []
    expected_output_tokens: int = Field(
        256, ge=1, description="output tokens assumed for cost estimates when max_tokens is unset"
    )


class StoreConfig(_Strict):
    """Where traces go: ``sqlite`` (default file in the data dir), ``sqlite:///path``, ``memory``
    or ``none``."""

    traces: str = "sqlite"
    flush_interval_ms: int = Field(200, ge=1, le=60_000)
    batch_size: int = Field(500, ge=1, le=100_000)

    @field_validator("traces")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value in ("sqlite", "memory", "none") or value.startswith("sqlite:///"):
            return value
        raise ValueError(
            f"unknown trace store {value!r}: use 'sqlite', 'sqlite:///path/to/traces.db', "
            "'memory' or 'none'"
        )


# --------------------------------------------------------------------------- upstreams, models


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


class OpenAIUpstream(_UpstreamBase):
    """Any OpenAI-compatible server: vLLM, Ollama, llama.cpp, SGLang, OpenAI, Azure-style URLs.

    ``base_url`` includes the version prefix (``http://host:8000/v1``); ``query`` adds
    query parameters such as Azure's ``api-version``; ``api_key_header`` switches the
    auth header (Azure uses ``api-key``).
    """

    kind: Literal["openai"] = "openai"
    query: dict[str, str] = {}
    api_key_header: str = "authorization"


class AnthropicUpstream(_UpstreamBase):
    """Anthropic's Messages API; requests and responses are translated from/to OpenAI's."""

    kind: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    api_version: str = "2023-06-01"
    default_max_tokens: int = Field(4096, ge=1)


class LocalUpstream(OpenAIUpstream):
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


Upstream = _tagged("kind", "openai", OpenAIUpstream, AnthropicUpstream, LocalUpstream)


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)


class EndpointConfig(_Strict):
    """One deployment of a model: an upstream, the model id there, its share of traffic."""

    upstream: str
    upstream_model: str | None = None
    weight: float = Field(1.0, gt=0)
    max_concurrency: int | None = Field(None, ge=1)


class ModelConfig(_Strict):
    """A model the gateway can route to, served by one upstream or several endpoints."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:/@-]+$")
    upstream: str | None = None
    upstream_model: str | None = None
    endpoints: list[EndpointConfig] = []
    balancing: Literal["least_loaded", "latency", "prefix_affinity", "weighted"] = "least_loaded"
    fallbacks: list[str] = []
    price: Price = Price()
    context_window: int = Field(8192, ge=1)
    max_output_tokens: int | None = Field(None, ge=1)
    capabilities: list[Literal["tools", "vision", "json"]] = ["tools", "json"]
    serves: list[Literal["chat", "completions"]] = ["chat", "completions"]
    description: str | None = None

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> ModelConfig:
        if (self.upstream is None) == (not self.endpoints):
            raise ValueError(
                "give either 'upstream' (one endpoint) or 'endpoints' (a list), not both or neither"
            )
        return self

    @property
    def deployments(self) -> list[EndpointConfig]:
        """Every endpoint of the model (``upstream`` is shorthand for one)."""
        if self.endpoints:
            return [
                e
                if e.upstream_model
                else e.model_copy(update={"upstream_model": self.target_model})
                for e in self.endpoints
            ]
        assert self.upstream is not None
        return [EndpointConfig(upstream=self.upstream, upstream_model=self.target_model)]

    @property
    def target_model(self) -> str:
        """The model id sent to the upstream (unless an endpoint names its own)."""
        return self.upstream_model or self.name


class RetryConfig(_Strict):
    """Retries of retryable failures (connect errors, timeouts, 429, 5xx, broken bodies)."""

    max_attempts: int = Field(4, ge=1, le=20)
    backoff_base_ms: float = Field(50.0, ge=0)
    backoff_max_ms: float = Field(2000.0, ge=0)
    max_retry_after_s: float = Field(5.0, ge=0)


class BreakerConfig(_Strict):
    """Per-endpoint circuit breaker."""

    consecutive_failures: int = Field(5, ge=1)
    error_rate: float = Field(0.5, gt=0, le=1)
    window_s: float = Field(30.0, gt=0)
    min_requests: int = Field(20, ge=1)
    open_s: float = Field(10.0, gt=0)
    half_open_probes: int = Field(1, ge=1)


class DispatchConfig(_Strict):
    """How a chosen model's request reaches an endpoint, and what happens when one fails."""

    retries: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    fallback_across_models: bool = True
    deadline_s: float = Field(600.0, gt=0)
    ttft_slo_ms: float = Field(2000.0, gt=0)
    prefix_chars: int = Field(1024, ge=16)


# --------------------------------------------------------------------------- signals


class _SignalBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    timeout_ms: float = Field(50.0, gt=0)
    scope: Literal["all", "last_user"] = "all"


class KeywordSignal(_SignalBase):
    """Matches when any (or all) keywords occur; word boundaries and case are options."""

    kind: Literal["keyword"]
    keywords: list[str] = Field(min_length=1)
    match: Literal["any", "all"] = "any"
    case_sensitive: bool = False
    word_boundary: bool = True


class RegexSignal(_SignalBase):
    """Matches when any (or all) regular expressions search successfully."""

    kind: Literal["regex"]
    patterns: list[str] = Field(min_length=1)
    match: Literal["any", "all"] = "any"
    case_sensitive: bool = False

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"patterns[{i}] {pattern!r} is not a valid regex: {exc}") from exc
        return patterns


class TokensSignal(_SignalBase):
    """Matches when the prompt's token count is in ``[min, max)``."""

    kind: Literal["tokens"]
    min: int = Field(0, ge=0)
    max: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> TokensSignal:
        if self.max is not None and self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        return self


class MetadataSignal(_SignalBase):
    """Matches on who is calling: API key name, the ``user`` field, or a request header."""

    kind: Literal["metadata"]
    source: Literal["key", "user", "header", "endpoint"]
    header: str | None = None
    values: list[str] = []
    pattern: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> MetadataSignal:
        if self.source == "header" and not self.header:
            raise ValueError("source 'header' needs 'header: <header-name>'")
        if not self.values and self.pattern is None:
            raise ValueError("give 'values' (exact matches) or 'pattern' (a regex)")
        return self


class HasCodeSignal(_SignalBase):
    """Matches when the request contains code (fences, or enough code-like lines)."""

    kind: Literal["has_code"]
    min_lines: int = Field(2, ge=1)


SignalConfig = _tagged(
    "kind", None, KeywordSignal, RegexSignal, TokensSignal, MetadataSignal, HasCodeSignal
)
SIGNAL_KINDS = ("keyword", "regex", "tokens", "metadata", "has_code")


# --------------------------------------------------------------------------- rules


class AllRule(_Strict):
    """True when every child rule is true."""

    all: list[Rule] = Field(min_length=1)


class AnyRule(_Strict):
    """True when at least one child rule is true."""

    any: list[Rule] = Field(min_length=1)


class NotRule(_Strict):
    """True when the child rule is false."""

    not_: Rule = Field(alias="not")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _rule_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "<signal>"
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return {"all": "<all>", "any": "<any>", "not": "<not>"}.get(key)
    if isinstance(value, AllRule | AnyRule | NotRule):
        return {AllRule: "<all>", AnyRule: "<any>", NotRule: "<not>"}[type(value)]
    return None


Rule = Annotated[
    Annotated[str, Tag("<signal>")]
    | Annotated[AllRule, Tag("<all>")]
    | Annotated[AnyRule, Tag("<any>")]
    | Annotated[NotRule, Tag("<not>")],
    Discriminator(
        _rule_tag,
        custom_error_type="invalid_rule",
        custom_error_message=(
            "a rule is a signal reference 'kind:name' or one of {all: [...]}, {any: [...]}, "
            "{not: rule}"
        ),
    ),
]
AllRule.model_rebuild()
AnyRule.model_rebuild()
NotRule.model_rebuild()


# --------------------------------------------------------------------------- selection


class FirstSelection(_Strict):
    """The first eligible candidate, in the order listed (``static`` is an alias)."""

    method: Literal["first", "static"]


class WeightedSelection(_Strict):
    """A random eligible candidate, proportional to ``weights`` (default 1 each)."""

    method: Literal["weighted"]
    weights: dict[str, float] = {}
    seed: int | None = None


class CheapestSelection(_Strict):
    """The eligible candidate with the lowest estimated cost."""

    method: Literal["cheapest"]


class RouterSelection(_Strict):
    """A learned router artifact (``crossroads fit``) picks the candidate: maximise predicted
    quality − λ·cost (``objective: {lambda: ...}``), or the cheapest candidate predicted to
    reach a quality (``objective: {quality_target: ...}``); default: the calibrated λ stored
    in the artifact. ``model_map`` maps the artifact's model keys to model names here."""

    method: Literal["router"]
    router: str
    objective: dict[Literal["lambda", "quality_target"], float] | None = None
    model_map: dict[str, str] = {}

    @field_validator("objective")
    @classmethod
    def _one_objective(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and len(value) != 1:
            raise ValueError("give exactly one of {lambda: float} or {quality_target: float}")
        return value


SelectionConfig = _tagged(
    "method", None, FirstSelection, WeightedSelection, CheapestSelection, RouterSelection
)


def _selection_shorthand(value: Any) -> Any:
    return {"method": value} if isinstance(value, str) else value


# --------------------------------------------------------------------------- decisions


class Decision(_Strict):
    """A rule with a priority, candidate models and how to choose among them."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    when: Rule
    priority: int = 0
    models: list[str] = Field(min_length=1)
    selection: SelectionConfig = FirstSelection(method="first")
    description: str | None = None

    @field_validator("selection", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _selection_shorthand(value)


class DefaultDecision(_Strict):
    """What happens when no decision matches."""

    name: str = "default"
    models: list[str] = Field(min_length=1)
    selection: SelectionConfig = FirstSelection(method="first")

    @field_validator("selection", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _selection_shorthand(value)


class Entrypoint(_Strict):
    """A routed model name clients can ask for (``auto`` by default), over a subset of
    decisions (all by default) with its own default."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:/@-]+$")
    decisions: list[str] | None = None
    default: DefaultDecision | None = None


# --------------------------------------------------------------------------- the whole file


class Config(_Strict):
    """A complete crossroads configuration."""

    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    dispatch: DispatchConfig = DispatchConfig()
    upstreams: list[Upstream] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    signals: list[SignalConfig] = []
    decisions: list[Decision] = []
    default: DefaultDecision | None = None
    entrypoints: list[Entrypoint] = [Entrypoint(name="auto")]

    @model_validator(mode="after")
    def _references(self) -> Config:
        problems = list(_reference_problems(self))
        if problems:
            raise _ReferenceErrors(problems)
        return self

    def model(self, name: str) -> ModelConfig:
        """The model called ``name``."""
        return self._models_by_name()[name]

    def _models_by_name(self) -> dict[str, ModelConfig]:
        return {m.name: m for m in self.models}

    @property
    def default_decision(self) -> DefaultDecision:
        """The explicit default, or the first model with ``first`` selection."""
        return self.default or DefaultDecision(models=[self.models[0].name])


class _ReferenceErrors(ValueError):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))
        self.problems = problems


def _duplicates(names: list[str]) -> set[str]:
    seen: set[str] = set()
    return {n for n in names if n in seen or seen.add(n)}  # type: ignore[func-returns-value]


def _reference_problems(cfg: Config) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    upstreams = {u.name for u in cfg.upstreams}
    models = {m.name for m in cfg.models}
    signals = {f"{s.kind}:{s.name}" for s in cfg.signals}
    decisions = {d.name for d in cfg.decisions}
    for label, items in (
        ("upstreams", [u.name for u in cfg.upstreams]),
        ("models", [m.name for m in cfg.models]),
        ("signals", [f"{s.kind}:{s.name}" for s in cfg.signals]),
        ("decisions", [d.name for d in cfg.decisions]),
        ("entrypoints", [e.name for e in cfg.entrypoints]),
    ):
        for dup in sorted(_duplicates(items)):
            problems.append((label, f"{dup!r} is defined more than once"))
    for i, m in enumerate(cfg.models):
        if m.upstream is not None and m.upstream not in upstreams:
            problems.append(
                (
                    f"models[{i}].upstream",
                    f"unknown upstream {m.upstream!r}; known: {_known(upstreams)}",
                )
            )
        for j, e in enumerate(m.endpoints):
            if e.upstream not in upstreams:
                problems.append(
                    (
                        f"models[{i}].endpoints[{j}].upstream",
                        f"unknown upstream {e.upstream!r}; known: {_known(upstreams)}",
                    )
                )
        for j, f in enumerate(m.fallbacks):
            if f not in models or f == m.name:
                problems.append(
                    (
                        f"models[{i}].fallbacks[{j}]",
                        f"{f!r} is not another configured model; known: {_known(models - {m.name})}",
                    )
                )
    for i, e in enumerate(cfg.entrypoints):
        if e.name in models:
            problems.append(
                (f"entrypoints[{i}].name", f"{e.name!r} is also a model name; pick another name")
            )
        for j, d in enumerate(e.decisions or []):
            if d not in decisions:
                problems.append(
                    (
                        f"entrypoints[{i}].decisions[{j}]",
                        f"unknown decision {d!r}; known: {_known(decisions)}",
                    )
                )
        if e.default:
            problems += _candidate_problems(f"entrypoints[{i}].default", e.default, models)
    for i, d in enumerate(cfg.decisions):
        problems += _rule_problems(f"decisions[{i}].when", d.when, signals)
        problems += _candidate_problems(f"decisions[{i}]", d, models)
    if cfg.default:
        problems += _candidate_problems("default", cfg.default, models)
    return problems


def _candidate_problems(
    path: str, decision: Decision | DefaultDecision, models: set[str]
) -> list[tuple[str, str]]:
    problems = [
        (f"{path}.models[{j}]", f"unknown model {m!r}; known: {_known(models)}")
        for j, m in enumerate(decision.models)
        if m not in models
    ]
    if isinstance(decision.selection, WeightedSelection):
        for model, weight in decision.selection.weights.items():
            if model not in decision.models:
                problems.append(
                    (f"{path}.selection.weights", f"{model!r} is not one of this decision's models")
                )
            if weight < 0:
                problems.append((f"{path}.selection.weights", f"weight of {model!r} is negative"))
    return problems


def _rule_problems(path: str, rule: Rule, signals: set[str]) -> list[tuple[str, str]]:
    if isinstance(rule, str):
        if ":" not in rule:
            return [
                (path, f"signal reference {rule!r} must be 'kind:name' (e.g. 'keyword:{rule}')")
            ]
        if rule not in signals:
            hint = _closest(rule, signals)
            return [
                (path, f"unknown signal {rule!r}" + (f"; did you mean {hint!r}?" if hint else ""))
            ]
        return []
    if isinstance(rule, AllRule):
        return [
            p
            for j, r in enumerate(rule.all)
            for p in _rule_problems(f"{path}.all[{j}]", r, signals)
        ]
    if isinstance(rule, AnyRule):
        return [
            p
            for j, r in enumerate(rule.any)
            for p in _rule_problems(f"{path}.any[{j}]", r, signals)
        ]
    return _rule_problems(f"{path}.not", rule.not_, signals)


def _known(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "(none defined)"


def _closest(name: str, options: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
    return found[0] if found else None


# --------------------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: dict[str, str] | None = None) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]  # type: ignore[index]
            if default is not None:
                return default
            raise ConfigError(
                [("", f"environment variable {name} is not set (used as ${{{name}}})")]
            )

        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    return value


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``('decisions', 2, 'when', 'all', 0)`` → ``decisions[2].when.all[0]``; union tags dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith("<"):
            out += ("." if out else "") + part
    return out


def _problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("error"), _ReferenceErrors):
            problems += ctx["error"].problems
            continue
        loc = format_loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append((loc, msg))
    return list(dict.fromkeys(problems))


def parse_config(data: Any, source: str | None = None) -> Config:
    """Validate a parsed YAML/JSON tree into a :class:`Config`, raising :class:`ConfigError`."""
    if data is None:
        raise ConfigError([("", "the config is empty")], source)
    if not isinstance(data, dict):
        raise ConfigError(
            [("", f"the config must be a mapping, not {type(data).__name__}")], source
        )
    try:
        return Config.model_validate(expand_env(data))
    except ValidationError as exc:
        raise ConfigError(_problems_from(exc), source) from None
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [("", f"cannot read config file: {exc.strerror or exc}")], str(path)
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"invalid YAML: {where}{problem}")], str(path)) from None
    return parse_config(data, str(path))
