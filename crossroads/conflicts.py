"""What ``crossroads validate`` finds in decision rules, beyond what config load rejects.

Per entrypoint, over its decisions in the order they are tried: a rule that is always false
(it contradicts itself) or always true (nothing after it is ever used), a decision that never
matches because the decisions tried before it match whenever it does (one broader rule, or
several together), a comparison that is always true or false over its signal's values, and
two decisions of equal priority that can both match, so that file order picks one.

The search is exact over finitely many cases: each signal reference is true or false, and a
compared value takes one value per region between the thresholds rules compare it with
(within the range its signal declares), one per label named plus one other label, or none
(a slow signal timed out, which makes every comparison on it false). A reference to a
signal whose match is a function of its value (``ValueSpec.matched_when``: ``jailbreak``
matches when its score reaches ``threshold``) is read as those comparisons, so
``jailbreak:attack`` is seen to cover ``jailbreak:attack > 0.8``; other references are
independent of everything, which may miss a finding but never makes a spurious one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from crossroads.config import Config
from crossroads.config.schema import declared_value_spec, signal_class
from crossroads.decisions import (
    _ORDER,
    Atom,
    CompiledDecision,
    Node,
    compile_entrypoints,
    compile_rule,
    leaves,
)

SEARCH_STEPS = 20_000  # per question; past it a rule counts as fine (no finding)

_NULL = object()  # a value the signal did not give (a nullable spec)
_OTHER = "another label"
Var = tuple[str, str, str | None]  # ("m", signal, None) a match; ("v", signal, field) a value


class _GaveUp(Exception):
    pass


@dataclass(frozen=True)
class Finding:
    """One problem: ``error`` fails ``crossroads validate``, a ``warning`` only with ``--strict``."""

    level: str
    message: str


def find_conflicts(config: Config) -> list[str]:
    """The messages of every finding (see :func:`check_rules`)."""
    return [f.message for f in check_rules(config)]


def check_rules(config: Config) -> list[Finding]:
    """Rules that can never match, always match, compare to no effect, or tie on priority."""
    findings: list[str] = []
    outcomes = {d.name: _outcome(d) for d in config.decisions}
    declared = {f"{s.kind}:{s.name}": s for s in config.signals}
    for decision in config.decisions:
        findings += _atom_findings(decision.name, decision.when, declared)
    for entry in compile_entrypoints(config).values():
        rules = {d.name: _related(d.rule, declared) for d in entry.decisions if d.rule}
        tried: list[CompiledDecision] = []
        for d in entry.decisions:
            findings += _decision_findings(entry.name, d, tried, outcomes, rules)
            tried.append(d)
    return [Finding("warning", m) for m in dict.fromkeys(findings)]


def _decision_findings(
    entry: str,
    d: CompiledDecision,
    tried: list[CompiledDecision],
    outcomes: dict[str, Any],
    rules: dict[str, Node],
) -> list[str]:
    rule = rules[d.name]
    if _solve([(rule, True)]) is None:
        return [f"decision {d.name!r} never matches: its rule contradicts itself (always false)"]
    out: list[str] = []
    if _solve([(rule, False)]) is None:
        out.append(
            f"decision {d.name!r} always matches: its rule is always true, so no decision "
            "tried after it nor the default is ever used"
        )
    if tried and _solve([(rule, True)] + [(rules[t.name], False) for t in tried]) is None:
        broader = [t for t in tried if _solve([(rule, True), (rules[t.name], False)]) is None]
        if broader:
            b = broader[0]
            why = (
                f"{b.name!r} has the same rule and is tried first"
                if _shape(rules[b.name]) == _shape(rule)
                else f"{b.name!r} (priority {b.priority}) is broader and is tried first"
            )
        else:
            overlapping = [
                t.name for t in tried if _solve([(rule, True), (rules[t.name], True)]) is not None
            ]
            why = (
                f"{', '.join(map(repr, overlapping))}, tried first, together match whenever it does"
            )
        return [*out, f"entrypoint {entry!r}: decision {d.name!r} never matches: {why}"]
    for i, other in enumerate(tried):
        if other.priority != d.priority or outcomes[other.name] == outcomes[d.name]:
            continue
        goals = [(rule, True), (rules[other.name], True)]
        witness = _solve(goals + [(rules[t.name], False) for t in tried[:i]])
        if witness:
            out.append(
                f"entrypoint {entry!r}: decisions {other.name!r} and {d.name!r} have the same "
                f"priority ({d.priority}) and both match when {_describe(witness)}; "
                f"{other.name!r} wins only because it comes first in the file: give one a "
                "higher priority"
            )
    return out


def _related(rule: Node, declared: dict[str, Any]) -> Node:
    """``rule`` with each reference to a signal whose match is a function of its value
    (``ValueSpec.matched_when``) replaced by those comparisons, so that ``tokens:long``
    (``min: 4000``) and ``tokens:long < 1000`` are seen to exclude each other."""
    if rule.op == "compare":
        return rule
    if rule.op != "signal":
        return replace(rule, children=tuple(_related(c, declared) for c in rule.children))
    config = declared.get(rule.signal)
    spec = declared_value_spec(config) if config is not None else None
    when = spec.matched_when if spec is not None else None
    slow = bool(getattr(signal_class(config), "is_async", False))
    if spec is None or when is None or (slow and not when):  # a slow one may time out
        return rule
    atoms = [Atom(rule.signal, None, op, value, spec, slow) for op, value in when]
    return Node(
        "all",
        rule.test,
        tuple(Node("compare", rule.test, signal=a.signal, text=rule.text, atom=a) for a in atoms),
    )


def _shape(node: Node) -> str:
    if node.op in ("signal", "compare"):
        return node.text
    return f"{node.op}({', '.join(_shape(c) for c in node.children)})"


def _outcome(decision: Any) -> Any:
    """What a decision does once it matches (two equal ones may tie harmlessly)."""
    return decision.model_dump(exclude={"name", "when", "priority", "description"})


def _atom_findings(name: str, when: Any, declared: dict[str, Any]) -> list[str]:
    out = []
    for leaf in leaves(compile_rule(when, declared)):
        if leaf.atom is None:
            continue
        domain = _domain(leaf.atom.spec, [leaf.atom], failures=False)
        values = [_test(leaf.atom, v) for v in domain]
        if all(values) or not any(values):
            out.append(
                f"decision {name!r}: the comparison {leaf.text!r} is always "
                f"{'true' if all(values) else 'false'} ({_values_of(leaf.atom)})"
            )
    return out


def _values_of(atom: Atom) -> str:
    spec = atom.spec
    if spec.type in ("number", "count"):
        high = "∞)" if math.isinf(spec.high) else f"{spec.high:g}]"
        return f"{atom.signal} is in [{spec.low:g}, {high}"
    if spec.type == "flag":
        return f"{atom.signal} is true or false"
    return f"the labels of {atom.signal}: {', '.join(sorted(spec.labels or ()))}"


# ---------------------------------------------------------------- the search


def _test(atom: Atom, value: Any) -> bool:
    if value is _NULL:
        return False
    if value == _OTHER and atom.spec.type == "label":
        return atom.op in ("!=", "not in")
    return bool(_ORDER[atom.op](value, atom.value))


def _evaluate(node: Node, assignment: dict[Var, Any]) -> bool | None:
    op = node.op
    if op == "signal":
        return assignment.get(("m", node.signal, None))
    if op == "compare":
        atom = node.atom
        assert atom is not None
        key = ("v", atom.signal, atom.field)
        return _test(atom, assignment[key]) if key in assignment else None
    if op == "not":
        value = _evaluate(node.children[0], assignment)
        return None if value is None else not value
    decisive = op == "any"
    unknown = False
    for child in node.children:
        value = _evaluate(child, assignment)
        if value is decisive:
            return decisive
        unknown = unknown or value is None
    return None if unknown else not decisive


def _solve(goals: list[tuple[Node, bool]]) -> dict[Var, Any] | None:
    """An assignment under which every goal rule has the wanted value, or None if there is
    none. A search too long to finish answers as if there were one."""
    atoms: dict[Var, list[Atom]] = {}
    order: list[Var] = []
    for node, _ in goals:
        for leaf in leaves(node):
            key: Var = (
                ("m", leaf.signal, None)
                if leaf.atom is None
                else ("v", leaf.signal, leaf.atom.field)
            )
            if key not in atoms:
                atoms[key] = []
                order.append(key)
            if leaf.atom is not None:
                atoms[key].append(leaf.atom)
    domains = [
        (
            key,
            [True, False]
            if key[0] == "m"
            else _domain(atoms[key][0].spec, atoms[key], failures=atoms[key][0].slow),
        )
        for key in order
    ]
    steps = [0]
    try:
        return _search(goals, domains, 0, {}, steps)
    except _GaveUp:
        return {}


def _search(
    goals: list[tuple[Node, bool]],
    domains: list[tuple[Var, list[Any]]],
    i: int,
    assignment: dict[Var, Any],
    steps: list[int],
) -> dict[Var, Any] | None:
    steps[0] += 1
    if steps[0] > SEARCH_STEPS:
        raise _GaveUp
    complete = True
    for node, wanted in goals:
        value = _evaluate(node, assignment)
        if value is None:
            complete = False
        elif value is not wanted:
            return None
    if complete:
        return dict(assignment)
    key, domain = domains[i]
    for value in domain:
        assignment[key] = value
        found = _search(goals, domains, i + 1, assignment, steps)
        if found is not None:
            return found
    del assignment[key]
    return None


def _domain(spec: Any, atoms: Iterable[Atom], failures: bool) -> list[Any]:
    """One value per region of the variable that the atoms tell apart, and with
    ``failures`` no value (the signal timed out: every comparison on it is false)."""
    atoms = list(atoms)
    out: list[Any]
    if spec.type == "flag":
        out = [True, False]
    elif spec.type == "label":
        named: set[str] = set()
        for atom in atoms:
            named |= atom.value if isinstance(atom.value, frozenset) else {atom.value}
        out = sorted(named)
        rest = sorted((spec.labels or frozenset()) - named)
        if spec.labels is None:
            out.append(_OTHER)
        elif rest:
            out.append(rest[0])
    else:
        out = _numbers(spec, sorted({float(a.value) for a in atoms}))
    return [*out, _NULL] if failures or spec.nullable else out


def _numbers(spec: Any, points: list[float]) -> list[float]:
    low, high = spec.low, spec.high
    found: set[float] = {p for p in points}
    if math.isfinite(low):
        found.add(low)
    if math.isfinite(high):
        found.add(high)
    if points:
        found.add(points[0] - 1)
        found.add(points[-1] + 1)
    else:
        found.add(0.0)
    if spec.type == "count":
        for p in points:
            found |= {math.floor(p) - 1, math.floor(p), math.ceil(p), math.ceil(p) + 1}
        found = {float(x) for x in found if float(x).is_integer()}
    else:
        for a, b in zip(points, points[1:], strict=False):
            found.add((a + b) / 2)
        if points and math.isfinite(low):
            found.add((low + points[0]) / 2)
        if points and math.isfinite(high):
            found.add((points[-1] + high) / 2)
    return sorted(x for x in found if low <= x <= high)


def _describe(witness: dict[Var, Any]) -> str:
    parts = []
    for (what, signal, field), value in witness.items():
        name = f"{signal}.{field}" if field else signal
        if what == "m":
            parts.append(f"{name} matches" if value else f"{name} does not match")
        elif value is _NULL:
            parts.append(f"{name} has no value")
        else:
            shown = (
                f"{value:g}"
                if isinstance(value, float)
                else str(value).lower()
                if isinstance(value, bool)
                else value
            )
            parts.append(f"{name} is {shown}")
    return ", ".join(parts) or "anything"
