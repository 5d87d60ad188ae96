"""Decision rules compiled to closures: one function both decides and explains.

A rule is a signal reference (``keyword:code``), a comparison of a signal's value
(``complexity:hard > 0.7``, ``language:lang in [de, fr]``) or an ``all``/``any``/``not`` tree
of rules. :func:`compile_rule` turns it into a :class:`Node` once, at start-up: its ``test``
is the predicate routing calls; :func:`settled` and :func:`explain` walk the same nodes.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crossroads.config import AllRule, AnyRule, Config, Decision, DefaultDecision, NotRule, Rule
from crossroads.config.comparisons import (
    Comparison,
    resolve_reference,
    typed_value,
    value_spec_of,
)
from crossroads.config.schema import declared_value_spec, signal_class
from crossroads.types import SignalResult, SignalValue, ValueSpec

Signals = Mapping[str, SignalResult]
Predicate = Callable[[Signals], bool]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda v, labels: v in labels,
    "not in": lambda v, labels: v not in labels,
}


@dataclass(frozen=True, slots=True)
class Atom:
    """A comparison as validate reasons about it: ``signal.field op value`` over ``spec``."""

    signal: str
    field: str | None
    op: str
    value: Any  # float, bool, a label, or a frozenset of labels
    spec: ValueSpec
    slow: bool = False  # an asynchronous signal: it may time out and give no value


@dataclass(frozen=True, slots=True)
class Node:
    """One compiled rule: ``op`` is ``signal`` (a reference), ``compare``, ``all``, ``any`` or
    ``not``; ``test`` decides it over computed signals (a missing signal is false)."""

    op: str
    test: Predicate
    children: tuple[Node, ...] = ()
    signal: str = ""  # the signal a leaf reads
    text: str = ""  # a leaf as written
    atom: Atom | None = None


def read_value(result: SignalResult, field: str | None) -> SignalValue | object:
    """The value a comparison reads: the signal's value, or one field of a mapping value."""
    value = result.value
    if field is None:
        return value
    return value.get(field) if isinstance(value, Mapping) else None


def _signal_predicate(name: str) -> Predicate:
    def test(signals: Signals) -> bool:
        result = signals.get(name)
        return result is not None and result.matched

    return test


_TYPES: dict[str, frozenset[type]] = {
    "number": frozenset({int, float}),
    "count": frozenset({int, float}),
    "label": frozenset({str}),
    "flag": frozenset({bool}),
}


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _text(value: object) -> bool:
    return isinstance(value, str)


# Values of other types that still fit (numpy scalars, str subclasses): checked after the
# exact types above, which are what built-in signals give.
_LOOSELY: dict[str, Callable[[object], bool]] = {
    "number": _real,
    "count": _real,
    "label": _text,
    "flag": lambda value: False,
}


def _comparison_predicate(atom: Atom) -> Predicate:
    name, field, compare, threshold = atom.signal, atom.field, _ORDER[atom.op], atom.value
    types = _TYPES.get(atom.spec.type, frozenset())
    loosely = _LOOSELY.get(atom.spec.type, _LOOSELY["flag"])

    # None (no value) or a value of another type than declared is not a match.
    if field is None:

        def test(signals: Signals) -> bool:
            result = signals.get(name)
            if result is None:
                return False
            value = result.value
            return (type(value) in types or loosely(value)) and bool(compare(value, threshold))

        return test

    def test_field(signals: Signals) -> bool:
        result = signals.get(name)
        if result is None:
            return False
        value = read_value(result, field)
        return (type(value) in types or loosely(value)) and bool(compare(value, threshold))

    return test_field


def compile_rule(rule: Rule, signals: Mapping[str, Any] | None = None) -> Node:
    """The compiled form of ``rule``; ``signals`` (``kind:name`` → signal config) are those
    comparisons may read (the config's; checked when it loaded)."""
    if isinstance(rule, str):
        return Node("signal", _signal_predicate(rule), signal=rule, text=rule)
    if isinstance(rule, Comparison):
        atom = compile_atom(rule, signals or {})
        return Node(
            "compare", _comparison_predicate(atom), signal=atom.signal, text=rule.text, atom=atom
        )
    if isinstance(rule, AllRule | AnyRule):
        op = "all" if isinstance(rule, AllRule) else "any"
        children = tuple(compile_rule(r, signals) for r in getattr(rule, op))
        return Node(op, _joined(op, tuple(c.test for c in children)), children)
    assert isinstance(rule, NotRule)
    child = compile_rule(rule.not_, signals)
    inner = child.test
    return Node("not", lambda s: not inner(s), (child,))


def _joined(op: str, tests: tuple[Predicate, ...]) -> Predicate:
    # Up to three children are joined with and/or: a generator under all()/any() costs
    # more than the tests it runs.
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return (lambda s: a(s) and b(s)) if op == "all" else (lambda s: a(s) or b(s))
    if len(tests) == 3:
        a, b, c = tests
        if op == "all":
            return lambda s: a(s) and b(s) and c(s)
        return lambda s: a(s) or b(s) or c(s)
    if op == "all":
        return lambda s: all(t(s) for t in tests)
    return lambda s: any(t(s) for t in tests)


def compile_atom(rule: Comparison, signals: Mapping[str, Any]) -> Atom:
    """A comparison resolved against the declared signals, its value typed by their spec."""
    name, field = resolve_reference(rule.signal, rule.field, signals.keys())
    shown = f"{name}.{field}" if field else name
    spec = value_spec_of(declared_value_spec(signals[name]), field, shown)
    slow = bool(getattr(signal_class(signals[name]), "is_async", False))
    return Atom(name, field, rule.op, typed_value(spec, rule.op, rule.value, shown), spec, slow)


def settled(rule: Node, signals: Signals) -> bool | None:
    """The rule's value if the signals computed so far decide it whatever the missing ones
    say (Kleene's three-valued logic), else ``None``."""
    op = rule.op
    if op == "signal":
        result = signals.get(rule.signal)
        return None if result is None else result.matched
    if op == "compare":
        return rule.test(signals) if rule.signal in signals else None
    if op == "not":
        value = settled(rule.children[0], signals)
        return None if value is None else not value
    decisive = op == "any"  # the child value that decides the whole
    unknown = False
    for child in rule.children:
        value = settled(child, signals)
        if value is decisive:
            return decisive
        unknown = unknown or value is None
    return None if unknown else not decisive


def needs_more(entry: CompiledEntrypoint, signals: Signals) -> bool:
    """Whether signals not yet computed could change which decision matches."""
    for decision in entry.decisions:
        value = settled(decision.rule, signals) if decision.rule is not None else False
        if value is None:
            return True
        if value:
            return False
    return False


def leaves(rule: Node) -> list[Node]:
    """The references and comparisons of a rule, in order."""
    if rule.op in ("signal", "compare"):
        return [rule]
    return [leaf for child in rule.children for leaf in leaves(child)]


def explain(rule: Node, signals: Signals) -> str:
    """The rule with each node's truth value, e.g. ``all(keyword:code=T, not(tokens:long=F)=T)=T``;
    a comparison shows the value it read, ``(complexity:hard=0.83 > 0.7)=T``; a part left open
    by signals not computed (cheaper ones settled the decision) shows ``?``."""
    value = settled(rule, signals)
    mark = "?" if value is None else "T" if value else "F"
    op = rule.op
    if op == "signal":
        return f"{rule.text}={mark}"
    if op == "compare":
        atom = rule.atom
        assert atom is not None
        result = signals.get(atom.signal)
        if result is None:
            return f"({rule.text})={mark}"
        read = read_value(result, atom.field)
        shown = "none" if read is None else str(read).lower() if type(read) is bool else str(read)
        head = f"{atom.signal}.{atom.field}" if atom.field else atom.signal
        return f"({head}={shown} {rule.text[len(head) :].lstrip()})={mark}"
    inner = ", ".join(explain(c, signals) for c in rule.children)
    return f"{op}({inner})={mark}"


@dataclass(frozen=True, slots=True)
class CompiledDecision:
    """A decision ready to test: its predicate, candidates and selection config."""

    name: str
    priority: int
    models: tuple[str, ...]
    selection: object
    rule: Node | None
    test: Predicate
    signals: frozenset[str]
    missed: str = ""  # its rule path line when passed over (the default: when taken)


@dataclass(frozen=True, slots=True)
class CompiledEntrypoint:
    """The decisions an entrypoint tries, highest priority first, and its default."""

    name: str
    decisions: tuple[CompiledDecision, ...]
    default: CompiledDecision
    signals: frozenset[str]


def _compile_decision(d: Decision, signals: Mapping[str, Any]) -> CompiledDecision:
    node = compile_rule(d.when, signals)
    return CompiledDecision(
        d.name,
        d.priority,
        tuple(d.models),
        d.selection,
        node,
        node.test,
        frozenset(leaf.signal for leaf in leaves(node)) | _feature_signals(d.selection),
        f"{d.name}: no",
    )


def _feature_signals(selection: object) -> frozenset[str]:
    # An online selector's feature signals are computed like the rules' (cheap ones always,
    # concurrent ones when the rules need them too).
    features = getattr(selection, "features", None)
    return frozenset(getattr(features, "signals", ()))


def _compile_default(d: DefaultDecision) -> CompiledDecision:
    return CompiledDecision(
        d.name,
        -(2**31),
        tuple(d.models),
        d.selection,
        None,
        lambda s: True,
        _feature_signals(d.selection),
        f"{d.name}: default",
    )


def compile_entrypoints(config: Config) -> dict[str, CompiledEntrypoint]:
    """Every entrypoint of the config, compiled. Ties in priority keep config order."""
    by_name = {d.name: d for d in config.decisions}
    declared = {f"{s.kind}:{s.name}": s for s in config.signals}
    out: dict[str, CompiledEntrypoint] = {}
    for entry in config.entrypoints:
        chosen = [by_name[n] for n in entry.decisions] if entry.decisions else config.decisions
        ordered = sorted(chosen, key=lambda d: -d.priority)  # sorted() is stable
        compiled = tuple(_compile_decision(d, declared) for d in ordered)
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
        path.append(decision.missed or f"{decision.name}: no")
    default = entry.default
    path.append(default.missed or f"{default.name}: default")
    return entry.default, path
