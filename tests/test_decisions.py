from __future__ import annotations

from crossroads.config import parse_config
from crossroads.decisions import compile_entrypoints, compile_rule, explain, find_conflicts, match
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
    return cfg.decisions[0].when


def test_boolean_trees_evaluate_like_python() -> None:
    r = rule({"all": ["keyword:x", {"any": ["keyword:y", {"not": "keyword:z"}]}]})
    test = compile_rule(r)
    for x in (False, True):
        for y in (False, True):
            for z in (False, True):
                assert test(values(x=x, y=y, z=z)) == (x and (y or not z))


def test_missing_signal_counts_as_false() -> None:
    assert compile_rule(rule("keyword:x"))({}) is False
    assert compile_rule(rule({"not": "keyword:x"}))({}) is True


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
    test = compile_rule(r)
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
