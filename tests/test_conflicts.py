"""What `crossroads validate` finds in rules: each finding on a small config, and none where
there is nothing to find (the shipped defaults, the examples, the deploy configs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossroads.config import load_config, parse_config
from crossroads.conflicts import check_rules, find_conflicts

ROOT = Path(__file__).parent.parent
BASE = {
    "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
    "models": [{"name": "a", "upstream": "u"}, {"name": "b", "upstream": "u"}],
    "signals": [
        *({"kind": "keyword", "name": n, "keywords": [n]} for n in ("x", "y", "z")),
        {"kind": "tokens", "name": "prompt"},
        {"kind": "complexity", "name": "hard"},
        {"kind": "domain", "name": "topic"},
        {"kind": "metadata", "name": "team", "source": "user", "values": ["q"]},
        {"kind": "budget", "name": "left", "below": 0.5},
        {"kind": "ood", "name": "unknown"},
        {"kind": "jailbreak", "name": "attack", "threshold": 0.5},
        {"kind": "tokens", "name": "long", "min": 4000},
    ],
}


def decision(name: str, when: Any, priority: int = 0, models: list[str] | None = None) -> dict:
    return {"name": name, "when": when, "priority": priority, "models": models or ["a"]}


def conflicts(*decisions: dict[str, Any], **extra: Any) -> list[str]:
    return find_conflicts(parse_config({**BASE, "decisions": list(decisions), **extra}))


@pytest.mark.parametrize(
    ("broad", "narrow"),
    [
        ("keyword:x", {"all": ["keyword:x", "keyword:y"]}),  # a conjunction of atoms
        ({"any": ["keyword:x", "keyword:y"]}, "keyword:y"),
        ("tokens:prompt > 1000", "tokens:prompt >= 4000"),  # numeric intervals
        ("complexity:hard >= 0.5", {"all": ["complexity:hard > 0.6", "complexity:hard < 0.9"]}),
        ("complexity:hard > 0.5", {"all": ["complexity:hard > 0.7", "keyword:z"]}),
        ("domain:topic in [code, math]", "domain:topic == math"),
        ("domain:topic != chat", "domain:topic in [code, math]"),
        ({"not": "keyword:x"}, {"all": ["keyword:y", {"not": "keyword:x"}]}),
        # a reference is read as the comparisons its signal matches by
        ("jailbreak:attack", "jailbreak:attack > 0.8"),
        ("complexity:hard", "complexity:hard > 0.7"),  # band hard: from 0.6
        ("keyword:x >= 1", "keyword:x"),
        ("tokens:long", "tokens:long > 5000"),
        ("ood:unknown", {"all": ["ood:unknown == true", "keyword:y"]}),
    ],
)
def test_a_broader_rule_tried_first_shadows_a_narrower_one(broad: Any, narrow: Any) -> None:
    found = conflicts(decision("broad", broad, 10), decision("narrow", narrow, 5, ["b"]))
    assert found == [
        "entrypoint 'auto': decision 'narrow' never matches: 'broad' (priority 10) is broader "
        "and is tried first"
    ]


@pytest.mark.parametrize(
    ("broad", "narrow"),
    [
        ("tokens:prompt > 1000", "tokens:prompt >= 1000"),  # 1000 itself gets through
        ("complexity:hard > 0.5", "complexity:hard > 0.4"),
        ("domain:topic in [code, math]", "domain:topic != chat"),
        ("keyword:x", {"any": ["keyword:x", "keyword:y"]}),
        ("metadata:team == a", "metadata:team != b"),
        ({"all": ["keyword:x", "keyword:y"]}, "keyword:x"),
        ("jailbreak:attack > 0.8", "jailbreak:attack"),
        ("complexity:hard > 0.7", "complexity:hard"),
        ("tokens:long > 5000", "tokens:long"),
    ],
)
def test_a_narrower_rule_first_shadows_nothing(broad: Any, narrow: Any) -> None:
    assert conflicts(decision("narrowfirst", broad, 10), decision("other", narrow, 5, ["b"])) == []


def test_several_rules_together_can_shadow_one() -> None:
    found = conflicts(
        decision("low", "tokens:prompt < 1000", 10),
        decision("high", "tokens:prompt >= 1000", 9),
        decision("any-size", "keyword:x", 1, ["b"]),
    )
    assert found == [
        "entrypoint 'auto': decision 'any-size' never matches: 'low', 'high', tried first, "
        "together match whenever it does"
    ]


def test_a_rule_that_is_always_false() -> None:
    found = conflicts(
        decision("never", {"all": ["tokens:prompt < 100", "tokens:prompt > 200"]}),
        decision("labels", {"all": ["domain:topic == code", "domain:topic == math"]}),
    )
    assert "decision 'never' never matches: its rule contradicts itself (always false)" in found
    assert "decision 'labels' never matches: its rule contradicts itself (always false)" in found
    assert len(found) == 2


def test_a_rule_that_is_always_true_and_what_it_hides() -> None:
    found = conflicts(
        decision("all", {"any": ["keyword:x", {"not": "keyword:x"}]}, 10),
        decision("hidden", "keyword:y", 5, ["b"]),
    )
    assert found == [
        "decision 'all' always matches: its rule is always true, so no decision tried after it "
        "nor the default is ever used",
        "entrypoint 'auto': decision 'hidden' never matches: 'all' (priority 10) is broader and "
        "is tried first",
    ]


def test_a_partition_of_a_slow_value_is_not_always_true_because_it_can_time_out() -> None:
    # false when complexity times out: the default is still reachable
    assert (
        conflicts(decision("split", {"any": ["complexity:hard > 0.5", "complexity:hard <= 0.5"]}))
        == []
    )
    found = conflicts(decision("split", {"any": ["tokens:prompt > 5", "tokens:prompt <= 5"]}))
    assert found == [
        "decision 'split' always matches: its rule is always true, so no decision tried after "
        "it nor the default is ever used"
    ]


@pytest.mark.parametrize(
    ("rule", "always"),
    [
        ("keyword:x >= 0", "true"),
        ("keyword:x > 100", "false"),
        ("complexity:hard <= 1", "true"),
        ("complexity:hard < 0", "false"),
        (
            "domain:topic in [chat, code, extraction, knowledge, math, other, reasoning, "
            "translation, writing]",
            "true",
        ),
    ],
)
def test_a_comparison_at_the_edge_of_its_range(rule: str, always: str) -> None:
    found = conflicts(decision("edge", {"all": ["keyword:y", rule]}))
    assert any(
        "decision 'edge': the comparison" in f and f"is always {always}" in f for f in found
    ), found


def test_an_optional_value_is_not_always_there() -> None:
    # a caller without budgets has no value: ">= 0" tells the two apart
    assert conflicts(decision("has-budget", "budget:left >= 0")) == []


def test_equal_priorities_that_overlap_depend_on_file_order() -> None:
    found = conflicts(
        decision("coding", "domain:topic == code", 5),
        decision("hard", "complexity:hard > 0.7", 5, ["b"]),
    )
    assert found == [
        "entrypoint 'auto': decisions 'coding' and 'hard' have the same priority (5) and both "
        "match when complexity:hard is 0.85, domain:topic is code; 'coding' wins only because it "
        "comes first in the file: give one a higher priority"
    ]


def test_equal_priorities_without_overlap_or_with_the_same_outcome_are_fine() -> None:
    assert (
        conflicts(
            decision("short", "tokens:prompt < 1000", 5),
            decision("long", "tokens:prompt >= 1000", 5, ["b"]),
        )
        == []
    )
    assert (
        conflicts(  # both send to the same models the same way
            decision("one", "keyword:x", 5), decision("two", "keyword:y", 5)
        )
        == []
    )
    assert (
        conflicts(  # the overlap is taken by a higher decision
            decision("both", {"all": ["keyword:x", "keyword:y"]}, 9),
            decision("one", "keyword:x", 5),
            decision("two", "keyword:y", 5, ["b"]),
        )
        == []
    )


def test_findings_are_per_entrypoint() -> None:
    found = conflicts(
        decision("broad", "keyword:x", 10),
        decision("narrow", {"all": ["keyword:x", "keyword:y"]}, 5, ["b"]),
        entrypoints=[
            {"name": "auto", "decisions": ["broad"]},
            {"name": "n", "decisions": ["narrow"]},
        ],
    )
    assert found == []


def test_flags_and_labels_are_reasoned_about() -> None:
    assert conflicts(
        decision("out", "ood:unknown == true", 10),
        decision("in", {"all": ["ood:unknown == true", "keyword:x"]}, 5, ["b"]),
    ) == [
        "entrypoint 'auto': decision 'in' never matches: 'out' (priority 10) is broader and is "
        "tried first"
    ]


def test_every_finding_is_a_warning() -> None:
    cfg = parse_config({**BASE, "decisions": [decision("d", "keyword:x >= 0")]})
    assert {f.level for f in check_rules(cfg)} == {"warning"}


def test_a_search_too_long_to_finish_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossroads import conflicts as module

    monkeypatch.setattr(module, "SEARCH_STEPS", 1)
    assert conflicts(decision("never", {"all": ["keyword:x", {"not": "keyword:x"}]})) == []


SHIPPED = [
    *sorted((ROOT / "examples" / "configs").rglob("*.yaml")),
    *sorted((ROOT / "bench" / "configs").glob("crossroads-*.yaml")),
    *sorted((ROOT / "deploy" / "kubernetes").rglob("crossroads.yaml")),
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_finding_on_shipped_configs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text()
    for name in re.findall(r"\$\{([A-Z_]+)\}", text):  # what the runner or deployment sets
        urls = {"POSTGRES": "postgresql://u@127.0.0.1/test", "REDIS": "redis://127.0.0.1:6379/0"}
        url = next((u for k, u in urls.items() if k in name), "http://127.0.0.1:9/v1")
        monkeypatch.setenv(name, url)
    if "decisions" not in text:
        pytest.skip("no decisions")
    data = yaml.safe_load(text)
    if "upstreams" not in data:  # a deploy manifest wrapping the config
        pytest.skip("not a crossroads config")
    assert find_conflicts(load_config(path)) == []


def test_no_finding_on_the_builtin_config_with_every_provider() -> None:
    from crossroads.defaults import default_config_data

    env = {"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y"}
    data = default_config_data(env, ollama_url="")
    assert [d["name"] for d in data["decisions"]] and find_conflicts(parse_config(data)) == []


def test_the_search_agrees_with_the_router_on_random_rules() -> None:
    """For random pairs of rules: a witness the search finds makes the first true and the
    second false under the router's own predicates, and where it finds none, no sampled
    request does either."""
    import random

    from crossroads.conflicts import _NULL, _related, _solve
    from crossroads.decisions import compile_rule
    from crossroads.types import SignalResult

    rng = random.Random(16)
    cfg = parse_config(BASE)
    declared = {f"{s.kind}:{s.name}": s for s in cfg.signals}
    # how each signal matches, given its value (as the signals themselves do)
    matches = {
        "keyword:x": lambda v: v >= 1,
        "tokens:prompt": lambda v: True,
        "complexity:hard": lambda v: v >= 0.6,
        "domain:topic": lambda v: v != "other",
        "metadata:team": lambda v: v == "q",
    }
    values = {
        "keyword:x": [0, 1, 2, 3, 100],
        "tokens:prompt": [0, 999, 1000, 1001, 4000, 9000],
        "complexity:hard": [0.0, 0.3, 0.5, 0.6, 0.65, 0.7, 1.0, None],  # None: timed out
        "domain:topic": ["code", "math", "chat", "other", None],
        "metadata:team": ["q", "a", "b", None],
    }
    leaves_pool = [
        "keyword:x", "complexity:hard", "domain:topic", "metadata:team",
        "keyword:x >= 2", "keyword:x == 1", "tokens:prompt > 1000", "tokens:prompt <= 1000",
        "tokens:prompt < 4000", "complexity:hard > 0.5", "complexity:hard <= 0.7",
        "domain:topic == code", "domain:topic in [code, math]", "domain:topic != chat",
        "metadata:team in [a, b]", "metadata:team not in [a]", "metadata:team == q",
    ]  # fmt: skip

    def random_rule(depth: int = 0) -> Any:
        if depth >= 2 or rng.random() < 0.4:
            return rng.choice(leaves_pool)
        kind = rng.choice(["all", "any", "not"])
        if kind == "not":
            return {"not": random_rule(depth + 1)}
        return {kind: [random_rule(depth + 1) for _ in range(rng.randint(1, 3))]}

    def when(rule: Any) -> Any:
        data = {**BASE, "decisions": [{"name": "d", "when": rule, "models": ["a"]}]}
        return parse_config(data).decisions[0].when

    def results(state: dict[str, Any]) -> dict[str, SignalResult]:
        return {
            name: SignalResult(name, value is not None and matches[name](value), value)
            for name, value in state.items()
        }

    checked = {"witness": 0, "implication": 0}
    for _ in range(300):
        a, b = (compile_rule(when(random_rule()), declared) for _ in range(2))
        witness = _solve([(_related(a, declared), True), (_related(b, declared), False)])
        if witness:
            state = {name: vs[0] for name, vs in values.items()}
            for (_, name, _), value in witness.items():
                state[name] = None if value is _NULL else value
            signals = results(state)
            assert a.test(signals) and not b.test(signals), (a, b, witness)
            checked["witness"] += 1
        elif witness is None:
            for _ in range(200):
                state = {name: rng.choice(vs) for name, vs in values.items()}
                signals = results(state)
                assert not (a.test(signals) and not b.test(signals)), (a, b, state)
            checked["implication"] += 1
    assert min(checked.values()) >= 20, checked
