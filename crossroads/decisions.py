"""Decision rules compiled to closures: one function both decides and explains.

A rule is a signal reference (``keyword:code``) or an ``all``/``any``/``not`` tree of rules.
:func:`compile_rule` turns it into a predicate over signal results, once, at start-up.
:func:`explain` walks the same tree with the same predicates to render the trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crossroads.config import AllRule, AnyRule, Config, Decision, DefaultDecision, NotRule, Rule
from crossroads.types import SignalResult

Signals = Mapping[str, SignalResult]
Predicate = Callable[[Signals], bool]


def _signal_predicate(name: str) -> Predicate:
    def test(signals: Signals) -> bool:
        result = signals.get(name)
        return result is not None and result.matched

    return test


def compile_rule(rule: Rule) -> Predicate:
    """A predicate over signal results, equivalent to ``rule``."""
    if isinstance(rule, str):
        return _signal_predicate(rule)
    if isinstance(rule, AllRule):
        children = tuple(compile_rule(r) for r in rule.all)
        return lambda s: all(c(s) for c in children)
    if isinstance(rule, AnyRule):
        children = tuple(compile_rule(r) for r in rule.any)
        return lambda s: any(c(s) for c in children)
    child = compile_rule(rule.not_)
    return lambda s: not child(s)


def settled(rule: Rule, signals: Signals) -> bool | None:
    """The rule's value if the signals computed so far decide it whatever the missing ones
    say (Kleene's three-valued logic), else ``None``."""
    if isinstance(rule, str):
        result = signals.get(rule)
        return None if result is None else result.matched
    if isinstance(rule, AllRule | AnyRule):
        children = rule.all if isinstance(rule, AllRule) else rule.any
        decisive = isinstance(rule, AnyRule)  # the child value that decides the whole
        unknown = False
        for child in children:
            value = settled(child, signals)
            if value is decisive:
                return decisive
            unknown = unknown or value is None
        return None if unknown else not decisive
    assert isinstance(rule, NotRule)
    value = settled(rule.not_, signals)
    return None if value is None else not value


def needs_more(entry: CompiledEntrypoint, signals: Signals) -> bool:
    """Whether signals not yet computed could change which decision matches."""
    for decision in entry.decisions:
        value = settled(decision.rule, signals) if decision.rule is not None else False
        if value is None:
            return True
        if value:
            return False
    return False


def referenced_signals(rule: Rule) -> set[str]:
    """Every ``kind:name`` the rule reads."""
    if isinstance(rule, str):
        return {rule}
    if isinstance(rule, AllRule):
        return set().union(*(referenced_signals(r) for r in rule.all))
    if isinstance(rule, AnyRule):
        return set().union(*(referenced_signals(r) for r in rule.any))
    return referenced_signals(rule.not_)


def explain(rule: Rule, signals: Signals) -> str:
    """The rule with each node's truth value, e.g. ``all(keyword:code=T, not(tokens:long=F)=T)=T``;
    a part left open by signals not computed (cheaper ones settled the decision) shows ``?``."""
    value = settled(rule, signals)
    mark = "?" if value is None else "T" if value else "F"
    if isinstance(rule, str):
        return f"{rule}={mark}"
    if isinstance(rule, AllRule):
        return f"all({', '.join(explain(r, signals) for r in rule.all)})={mark}"
    if isinstance(rule, AnyRule):
        return f"any({', '.join(explain(r, signals) for r in rule.any)})={mark}"
    assert isinstance(rule, NotRule)
    return f"not({explain(rule.not_, signals)})={mark}"


@dataclass(frozen=True, slots=True)
class CompiledDecision:
    """A decision ready to test: its predicate, candidates and selection config."""

    name: str
    priority: int
    models: tuple[str, ...]
    selection: object
    rule: Rule | None
    test: Predicate
    signals: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledEntrypoint:
    """The decisions an entrypoint tries, highest priority first, and its default."""

    name: str
    decisions: tuple[CompiledDecision, ...]
    default: CompiledDecision
    signals: frozenset[str]


def _compile_decision(d: Decision) -> CompiledDecision:
    return CompiledDecision(
        d.name,
        d.priority,
        tuple(d.models),
        d.selection,
        d.when,
        compile_rule(d.when),
        frozenset(referenced_signals(d.when)),
    )


def _compile_default(d: DefaultDecision) -> CompiledDecision:
    return CompiledDecision(
        d.name, -(2**31), tuple(d.models), d.selection, None, lambda s: True, frozenset()
    )


def compile_entrypoints(config: Config) -> dict[str, CompiledEntrypoint]:
    """Every entrypoint of the config, compiled. Ties in priority keep config order."""
    by_name = {d.name: d for d in config.decisions}
    out: dict[str, CompiledEntrypoint] = {}
    for entry in config.entrypoints:
        chosen = [by_name[n] for n in entry.decisions] if entry.decisions else config.decisions
        ordered = sorted(chosen, key=lambda d: -d.priority)  # sorted() is stable
        compiled = tuple(_compile_decision(d) for d in ordered)
        default = _compile_default(entry.default or config.default_decision)
        signals = frozenset().union(*(d.signals for d in compiled))
        out[entry.name] = CompiledEntrypoint(entry.name, compiled, default, signals)
    return out


def match(entry: CompiledEntrypoint, signals: Signals) -> tuple[CompiledDecision, list[str]]:
    """The first decision whose rule holds (else the default) and the path of rules tried."""
    path: list[str] = []
    for decision in entry.decisions:
        if decision.test(signals):
            path.append(f"{decision.name}: {explain(decision.rule, signals)}")  # type: ignore[arg-type]
            return decision, path
        path.append(f"{decision.name}: no")
    path.append(f"{entry.default.name}: default")
    return entry.default, path


def find_conflicts(config: Config) -> list[str]:
    """Warnings about rules that can never match: a decision shadowed by an identical rule of
    equal or higher priority, or a rule that contradicts itself (``all: [x, not: x]``)."""
    warnings: list[str] = []
    seen: dict[str, str] = {}
    for entry in compile_entrypoints(config).values():
        for d in entry.decisions:
            key = repr(d.rule)
            if key in seen and seen[key] != d.name:
                warnings.append(
                    f"entrypoint {entry.name!r}: decision {d.name!r} never matches: "
                    f"{seen[key]!r} has the same rule and is tried first"
                )
            seen.setdefault(key, d.name)
            if d.rule is not None and not _satisfiable(d.rule):
                warnings.append(f"decision {d.name!r} never matches: its rule contradicts itself")
        seen.clear()
    return list(dict.fromkeys(warnings))


def _satisfiable(rule: Rule) -> bool:
    names = sorted(referenced_signals(rule))
    if len(names) > 12:  # 4096 assignments at most; beyond that, assume satisfiable
        return True
    test = compile_rule(rule)
    for bits in range(2 ** len(names)):
        values = {n: SignalResult(n, bool(bits >> i & 1)) for i, n in enumerate(names)}
        if test(values):
            return True
    return False
