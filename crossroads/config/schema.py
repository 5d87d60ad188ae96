"""The whole config file, and the checks that span its sections (references)."""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    model_validator,
)

from crossroads.config.base import _Strict
from crossroads.config.comparisons import Comparison, resolve_reference, typed_value, value_spec_of
from crossroads.config.feedback import FeedbackConfig
from crossroads.config.models import DispatchConfig, ModelConfig
from crossroads.config.observe import MetricsConfig, OpenTelemetryConfig
from crossroads.config.online import online_problems
from crossroads.config.plans import plan_models
from crossroads.config.rules import (
    AllRule,
    AnyRule,
    Decision,
    DefaultDecision,
    Entrypoint,
    Rule,
    WeightedSelection,
)
from crossroads.config.server import ServerConfig, StoreConfig
from crossroads.config.signals import SignalConfig
from crossroads.config.state import StateConfig
from crossroads.config.tenants import TeamConfig
from crossroads.config.ui import UiConfig
from crossroads.config.upstreams import Upstream
from crossroads.types import ValueSpec


class Config(_Strict):
    """A complete crossroads configuration."""

    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    metrics: MetricsConfig = MetricsConfig()
    opentelemetry: OpenTelemetryConfig = OpenTelemetryConfig()
    dispatch: DispatchConfig = DispatchConfig()
    upstreams: list[Upstream] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    signals: list[SignalConfig] = []
    decisions: list[Decision] = []
    default: DefaultDecision | None = None
    entrypoints: list[Entrypoint] = [Entrypoint(name="auto")]
    teams: list[TeamConfig] = []
    ui: UiConfig = UiConfig()
    state: StateConfig | None = None
    feedback: FeedbackConfig = FeedbackConfig()

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
    decisions = {d.name for d in cfg.decisions}
    declared = {f"{s.kind}:{s.name}": s for s in cfg.signals}
    for label, items in (
        ("upstreams", [u.name for u in cfg.upstreams]),
        ("models", [m.name for m in cfg.models]),
        ("signals", [f"{s.kind}:{s.name}" for s in cfg.signals]),
        ("decisions", [d.name for d in cfg.decisions]),
        ("entrypoints", [e.name for e in cfg.entrypoints]),
        ("teams", [t.name for t in cfg.teams]),
        ("server.api_keys", [k.name for k in cfg.server.api_keys]),
    ):
        for dup in sorted(_duplicates(items)):
            problems.append((label, f"{dup!r} is defined more than once"))
    teams = {t.name for t in cfg.teams}
    for i, k in enumerate(cfg.server.api_keys):
        if k.team is not None and k.team not in teams:
            problems.append(
                (f"server.api_keys[{i}].team", f"unknown team {k.team!r}; known: {_known(teams)}")
            )
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
    for i, entry in enumerate(cfg.entrypoints):
        if entry.name in models:
            problems.append(
                (
                    f"entrypoints[{i}].name",
                    f"{entry.name!r} is also a model name; pick another name",
                )
            )
        for j, decision in enumerate(entry.decisions or []):
            if decision not in decisions:
                problems.append(
                    (
                        f"entrypoints[{i}].decisions[{j}]",
                        f"unknown decision {decision!r}; known: {_known(decisions)}",
                    )
                )
        if entry.default:
            problems += _candidate_problems(f"entrypoints[{i}].default", entry.default, models)
            problems += online_problems(f"entrypoints[{i}].default", entry.default, set(declared))
    for i, d in enumerate(cfg.decisions):
        problems += _rule_problems(f"decisions[{i}].when", d.when, declared)
        problems += _candidate_problems(f"decisions[{i}]", d, models)
        problems += online_problems(f"decisions[{i}]", d, set(declared))
    if cfg.default:
        problems += _candidate_problems("default", cfg.default, models)
        problems += online_problems("default", cfg.default, set(declared))
    reference = cfg.ui.reference_model
    if reference is not None and reference not in models:
        problems.append(
            ("ui.reference_model", f"unknown model {reference!r}; known: {_known(models)}")
        )
    problems += _plan_problems(cfg, models)
    return problems


def _plan_problems(cfg: Config, models: set[str]) -> list[tuple[str, str]]:
    """Plans call configured models, and a decision name has one plan (plans are found by
    the routed decision's name, and entrypoint defaults may share one)."""
    problems: list[tuple[str, str]] = []
    owners: list[tuple[str, Decision | DefaultDecision]] = [
        (f"decisions[{i}]", d) for i, d in enumerate(cfg.decisions)
    ]
    if cfg.default:
        owners.append(("default", cfg.default))
    owners += [
        (f"entrypoints[{i}].default", e.default) for i, e in enumerate(cfg.entrypoints) if e.default
    ]
    plans: dict[str, object] = {}
    for path, decision in owners:
        if decision.plan is None:
            continue
        for where, name in plan_models(decision.plan):
            if name not in models:
                problems.append(
                    (f"{path}.plan.{where}", f"unknown model {name!r}; known: {_known(models)}")
                )
        if decision.name == "explicit":
            problems.append(
                (
                    f"{path}.name",
                    "'explicit' names requests for a configured model: rename the decision",
                )
            )
        seen = plans.setdefault(decision.name, decision.plan)
        if seen != decision.plan:
            problems.append(
                (
                    f"{path}.plan",
                    f"another decision named {decision.name!r} has another plan: rename one",
                )
            )
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


def _rule_problems(path: str, rule: Rule, signals: dict[str, Any]) -> list[tuple[str, str]]:
    if isinstance(rule, str):
        problem = _reference_problem(rule, signals)
        return [(path, problem)] if problem else []
    if isinstance(rule, Comparison):
        return _comparison_problems(path, rule, signals)
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


def _reference_problem(name: str, signals: dict[str, Any]) -> str | None:
    if ":" not in name:
        return f"signal reference {name!r} must be 'kind:name' (e.g. 'keyword:{name}')"
    if name not in signals:
        hint = _closest(name, set(signals))
        return f"unknown signal {name!r}" + (f"; did you mean {hint!r}?" if hint else "")
    return None


def _comparison_problems(
    path: str, rule: Comparison, signals: dict[str, Any]
) -> list[tuple[str, str]]:
    name, field = resolve_reference(rule.signal, rule.field, signals.keys())
    problem = _reference_problem(name, signals)
    if problem:
        return [(path, problem)]
    shown = f"{name}.{field}" if field else name
    try:
        spec = value_spec_of(declared_value_spec(signals[name]), field, shown)
        typed_value(spec, rule.op, rule.value, shown)
    except ValueError as exc:
        return [(path, str(exc))]
    return []


def signal_class(signal: Any) -> Any:
    """The implementation class of a configured signal's kind (None if none is registered)."""
    from crossroads.signals.base import SIGNALS, signal_kinds

    signal_kinds()  # built-in kinds register on import
    return SIGNALS.find(signal.kind)


def declared_value_spec(signal: Any) -> ValueSpec | None:
    """What the value of a configured signal is, as its kind declares
    (:attr:`crossroads.signals.base.Signal.value_spec`)."""
    spec_for = getattr(signal_class(signal), "value_spec_for", None)
    return spec_for(signal) if spec_for is not None else None


def _known(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "(none defined)"


def _closest(name: str, options: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
    return found[0] if found else None
