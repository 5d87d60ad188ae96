from __future__ import annotations

import pytest

from crossroads.config import parse_config
from crossroads.conflicts import find_conflicts
from crossroads.decisions import compile_entrypoints, compile_rule, explain, match
from crossroads.types import SignalResult

BASE = {
    "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
    "models": [{"name": "a", "upstream": "u"}, {"name": "b", "upstream": "u"}],
}
SIGNALS = [{"kind": "keyword", "name": n, "keywords": [n]} for n in ("x", "y", "z")]


def values(**matched: bool) -> dict[str, SignalResult]:
    return {f"keyword:{k}": SignalResult(f"keyword:{k}", v) for k, v in matched.items()}


def rule(data: object):
    cfg = parse_config(
        {**BASE, "signals": SIGNALS, "decisions": [{"name": "d", "when": data, "models": ["a"]}]}
    )
    return compile_rule(cfg.decisions[0].when)


def test_boolean_trees_evaluate_like_python() -> None:
    r = rule({"all": ["keyword:x", {"any": ["keyword:y", {"not": "keyword:z"}]}]})
    test = r.test
    for x in (False, True):
        for y in (False, True):
            for z in (False, True):
                assert test(values(x=x, y=y, z=z)) == (x and (y or not z))


def test_missing_signal_counts_as_false() -> None:
    assert rule("keyword:x").test({}) is False
    assert rule({"not": "keyword:x"}).test({}) is True


def test_explain_marks_every_node() -> None:
    r = rule({"all": ["keyword:x", {"not": "keyword:z"}]})
    assert explain(r, values(x=True, z=False)) == "all(keyword:x=T, not(keyword:z=F)=T)=T"


def test_explain_marks_parts_left_open_by_uncomputed_signals() -> None:
    r = rule({"any": ["keyword:x", {"not": "keyword:z"}]})
    assert explain(r, values(x=True)) == "any(keyword:x=T, not(keyword:z=?)=?)=T"
    assert explain(r, values(x=False)) == "any(keyword:x=F, not(keyword:z=?)=?)=?"


def test_settled_agrees_with_the_rule_when_every_signal_is_known() -> None:
    from crossroads.decisions import settled

    r = rule({"all": ["keyword:x", {"any": ["keyword:y", {"not": "keyword:z"}]}]})
    test = r.test
    for x in (False, True):
        for y in (False, True):
            for z in (False, True):
                known = values(x=x, y=y, z=z)
                assert settled(r, known) is test(known)


def test_priority_orders_decisions_and_default_catches_the_rest() -> None:
    cfg = parse_config(
        {
            **BASE,
            "signals": SIGNALS,
            "decisions": [
                {"name": "low", "when": "keyword:x", "models": ["a"]},
                {"name": "high", "when": "keyword:y", "priority": 10, "models": ["b"]},
            ],
            "default": {"name": "fallback", "models": ["b"]},
        }
    )
    entry = compile_entrypoints(cfg)["auto"]
    assert [d.name for d in entry.decisions] == ["high", "low"]
    decision, path = match(entry, values(x=True, y=True))
    assert decision.name == "high" and path == ["high: keyword:y=T"]
    decision, path = match(entry, values(x=True, y=False))
    assert decision.name == "low" and path == ["high: no", "low: keyword:x=T"]
    decision, path = match(entry, values())
    assert decision.name == "fallback" and path[-1] == "fallback: default"


def test_entrypoints_route_over_their_own_decisions() -> None:
    cfg = parse_config(
        {
            **BASE,
            "signals": SIGNALS,
            "decisions": [
                {"name": "dx", "when": "keyword:x", "models": ["a"]},
                {"name": "dy", "when": "keyword:y", "models": ["b"]},
            ],
            "entrypoints": [
                {"name": "auto"},
                {"name": "only-y", "decisions": ["dy"], "default": {"models": ["a"]}},
            ],
        }
    )
    entries = compile_entrypoints(cfg)
    assert [d.name for d in entries["only-y"].decisions] == ["dy"]
    assert entries["only-y"].signals == {"keyword:y"}
    assert match(entries["only-y"], values(x=True))[0].models == ("a",)


def test_conflicts_found_shadowed_and_contradictory_rules() -> None:
    cfg = parse_config(
        {
            **BASE,
            "signals": SIGNALS,
            "decisions": [
                {"name": "first", "when": "keyword:x", "priority": 5, "models": ["a"]},
                {"name": "shadowed", "when": "keyword:x", "models": ["b"]},
                {
                    "name": "never",
                    "when": {"all": ["keyword:y", {"not": "keyword:y"}]},
                    "models": ["b"],
                },
            ],
        }
    )
    warnings = find_conflicts(cfg)
    assert any("'shadowed' never matches" in w and "'first'" in w for w in warnings)
    assert any("'never' never matches" in w and "contradicts" in w for w in warnings)
    assert len(warnings) == 2


NUMERIC = [
    {"kind": "keyword", "name": "x", "keywords": ["x"]},
    {"kind": "complexity", "name": "hard"},
    {"kind": "metadata", "name": "team", "source": "user", "values": ["q"]},
    {"kind": "budget", "name": "left", "below": 0.5},
]


def compiled(data: object):
    cfg = parse_config(
        {**BASE, "signals": NUMERIC, "decisions": [{"name": "d", "when": data, "models": ["a"]}]}
    )
    return compile_entrypoints(cfg)["auto"].decisions[0]


def result(name: str, value: object, matched: bool = False) -> dict[str, SignalResult]:
    return {name: SignalResult(name, matched, value)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("complexity:hard > 0.7", 0.71, True),
        ("complexity:hard > 0.7", 0.7, False),
        ("complexity:hard >= 0.7", 0.7, True),
        ("complexity:hard < 0.7", 0.2, True),
        ("complexity:hard <= 0.2", 0.2, True),
        ("complexity:hard == 0.2", 0.2, True),
        ("complexity:hard != 0.2", 0.3, True),
        ("metadata:team in [a, b]", "b", True),
        ("metadata:team in [a, b]", "c", False),
        ("metadata:team not in [a, b]", "c", True),
        ("metadata:team == a", "a", True),
        ("metadata:team != a", "a", False),
        ("keyword:x >= 2", 3, True),
        ("keyword:x >= 2", 1, False),
    ],
)
def test_comparisons_read_the_signals_value(rule: str, value: object, expected: bool) -> None:
    d = compiled(rule)
    name = rule.split()[0]
    assert d.test(result(name, value)) is expected
    assert d.signals == {name}


@pytest.mark.parametrize(
    "rule",
    ["budget:left < 0.5", "budget:left >= 0", "metadata:team != a", "metadata:team not in [a]"],
)
def test_a_missing_failed_or_absent_value_makes_every_comparison_false(rule: str) -> None:
    d = compiled(rule)
    name = rule.split()[0]
    assert d.test({}) is False  # not computed
    assert d.test(result(name, None)) is False  # no budget, no header
    failed = {name: SignalResult(name, False, error="timed out after 50 ms", timed_out=True)}
    assert d.test(failed) is False
    assert d.test(result(name, ["not", "a", "scalar"])) is False  # a value of another type


def test_a_field_of_a_mapping_value_is_read_by_name() -> None:
    from crossroads.config import Comparison
    from crossroads.decisions import Atom, _comparison_predicate
    from crossroads.types import ValueSpec

    atom = Atom("pii:found", "count", ">=", 1.0, ValueSpec("count", 0))
    test = _comparison_predicate(atom)
    assert test(result("pii:found", {"count": 2, "types": ["email"]})) is True
    assert test(result("pii:found", {"count": 0})) is False
    assert test(result("pii:found", {"types": []})) is False  # no such field
    assert test(result("pii:found", 3)) is False  # not a mapping
    assert Comparison(signal="pii:found.count", op=">=", value=1).text == "pii:found.count >= 1"


def test_comparisons_are_unknown_until_their_signal_is_computed() -> None:
    from crossroads.decisions import settled

    d = compiled({"any": ["keyword:x", "complexity:hard > 0.7"]})
    assert settled(d.rule, values(x=True)) is True  # the cheap signal decides
    assert settled(d.rule, values(x=False)) is None  # the slow one is needed
    known = {**values(x=False), **result("complexity:hard", 0.9)}
    assert settled(d.rule, known) is True
    both = compiled({"all": ["keyword:x", {"not": "complexity:hard > 0.7"}]})
    assert settled(both.rule, values(x=False)) is False
    assert settled(both.rule, {**values(x=True), **result("complexity:hard", 0.9)}) is False


def test_explain_shows_the_value_a_comparison_read() -> None:
    d = compiled({"any": ["keyword:x", "complexity:hard > 0.7"]})
    assert explain(d.rule, values(x=False)) == "any(keyword:x=F, (complexity:hard > 0.7)=?)=?"
    known = {**values(x=False), **result("complexity:hard", 0.83)}
    assert explain(d.rule, known) == "any(keyword:x=F, (complexity:hard=0.83 > 0.7)=T)=T"
    team = compiled("metadata:team in [a, b]")
    assert explain(team.rule, result("metadata:team", None)) == ("(metadata:team=none in [a, b])=F")


def test_explain_writes_flags_as_in_rules() -> None:
    cfg = parse_config(
        {
            **BASE,
            "signals": [{"kind": "ood", "name": "far"}],
            "decisions": [{"name": "d", "when": "ood:far == true", "models": ["a"]}],
        }
    )
    d = compile_entrypoints(cfg)["auto"].decisions[0]
    assert explain(d.rule, result("ood:far", True, True)) == "(ood:far=true == true)=T"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_all_and_any_of_any_width_evaluate_like_python(n: int) -> None:
    names = [f"k{i}" for i in range(n)]
    cfg = parse_config(
        {
            **BASE,
            "signals": [{"kind": "keyword", "name": x, "keywords": [x]} for x in names],
            "decisions": [
                {
                    "name": "every",
                    "when": {"all": [f"keyword:{x}" for x in names]},
                    "models": ["a"],
                },
                {"name": "some", "when": {"any": [f"keyword:{x}" for x in names]}, "models": ["a"]},
            ],
        }
    )
    every, some = compile_entrypoints(cfg)["auto"].decisions
    for bits in range(2**n):
        truth = [bool(bits >> i & 1) for i in range(n)]
        known = values(**dict(zip(names, truth, strict=True)))
        assert every.test(known) is all(truth) and some.test(known) is any(truth)


def test_numbers_and_labels_of_other_types_still_compare() -> None:
    np = pytest.importorskip("numpy")
    d = compiled("complexity:hard > 0.7")
    assert d.test(result("complexity:hard", np.float32(0.9))) is True
    assert d.test(result("complexity:hard", np.int64(1))) is True
    assert d.test(result("complexity:hard", True)) is False  # a flag is not a score
    team = compiled("metadata:team == a")
    assert team.test(result("metadata:team", np.str_("a"))) is True
