"""Comparisons in rules: both YAML forms, what config load rejects (with its path and line),
and what each signal kind declares about its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossroads.config import load_config, parse_config
from crossroads.config.comparisons import Comparison, parse_comparison
from crossroads.exceptions import ConfigError

BASE = {
    "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
    "models": [{"name": "a", "upstream": "u"}],
    "signals": [
        {"kind": "keyword", "name": "x", "keywords": ["x"]},
        {"kind": "tokens", "name": "prompt"},
        {"kind": "has_code", "name": "code"},
        {"kind": "metadata", "name": "team", "source": "user", "values": ["q"]},
        {"kind": "budget", "name": "low", "below": 0.2},
        {"kind": "complexity", "name": "hard"},
        {"kind": "domain", "name": "topic"},
        {"kind": "domain", "name": "mine", "model": "/nowhere/head.npz"},
        {"kind": "ood", "name": "unknown"},
        {"kind": "embedding", "name": "near", "exemplars": ["hello"]},
    ],
}


def when(rule: object) -> object:
    cfg = parse_config({**BASE, "decisions": [{"name": "d", "when": rule, "models": ["a"]}]})
    return cfg.decisions[0].when


def problems(rule: object) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        when(rule)
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "signal", "op", "value"),
    [
        ("complexity:hard > 0.7", "complexity:hard", ">", 0.7),
        ("tokens:prompt<4000", "tokens:prompt", "<", 4000),
        ("keyword:x >= 1", "keyword:x", ">=", 1),
        ("domain:topic == code", "domain:topic", "==", "code"),
        ("domain:topic != 'code'", "domain:topic", "!=", "code"),
        ("metadata:team in [a, 'b c', 42]", "metadata:team", "in", ["a", "b c", 42]),
        ("metadata:team not in [a]", "metadata:team", "not in", ["a"]),
        ("ood:unknown == true", "ood:unknown", "==", True),
        ("pii:found.count >= 1", "pii:found.count", ">=", 1),
    ],
)
def test_compact_comparisons_parse(text: str, signal: str, op: str, value: object) -> None:
    assert parse_comparison(text) == {"signal": signal, "op": op, "value": value}


def test_both_forms_give_the_same_rule() -> None:
    compact = when("complexity:hard > 0.7")
    structured = when({"signal": "complexity:hard", "op": ">", "value": 0.7})
    assert isinstance(compact, Comparison) and compact == structured
    assert compact.text == "complexity:hard > 0.7"
    nested = when({"all": ["keyword:x", {"not": "domain:topic in [code, math]"}]})
    assert nested.all[1].not_ == Comparison(  # type: ignore[union-attr]
        signal="domain:topic", op="in", value=["code", "math"]
    )


def test_comparisons_are_read_from_yaml_unquoted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "upstreams: [{name: u, base_url: 'http://x/v1'}]\n"
        "models: [{name: a, upstream: u}]\n"
        "signals: [{kind: tokens, name: prompt}, {kind: domain, name: topic}]\n"
        "decisions:\n"
        "  - name: long\n"
        "    when: tokens:prompt >= 4000\n"
        "    models: [a]\n"
        "  - name: code\n"
        "    when: domain:topic in [code, math]\n"
        "    models: [a]\n"
    )
    cfg = load_config(path)
    assert cfg.decisions[0].when == Comparison(signal="tokens:prompt", op=">=", value=4000)
    assert cfg.decisions[1].when.value == ["code", "math"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("keyword:nope > 1", "unknown signal 'keyword:nope'"),
        ({"signal": "keywrd:x", "op": ">", "value": 1}, "did you mean 'keyword:x'"),
        ("tokens:prompt.count > 1", "unknown field 'count' of tokens:prompt"),
        (
            "complexity:hard > 1.5",
            "the threshold 1.5 is outside the range of complexity:hard, [0, 1]",
        ),
        ("budget:low < -0.1", "outside the range of budget:low, [0, 1]"),
        ("embedding:near >= -2", "outside the range of embedding:near, [-1, 1]"),
        ("tokens:prompt > -1", "outside the range of tokens:prompt, [0, ∞)"),
        ("keyword:x > 101", "outside the range of keyword:x, [0, 100]"),
        ("keyword:x == 1.5", "keyword:x is a whole number: it never equals 1.5"),
        ("complexity:hard in [0.5]", "'in' tests labels and complexity:hard is a score"),
        ("tokens:prompt > many", "tokens:prompt is a count: compare it with a number, not 'many'"),
        ("domain:topic > 3", "'>' compares numbers and domain:topic is a label"),
        ("domain:topic == cooking", "domain:topic has no label 'cooking'; its labels: chat, code"),
        ("domain:topic == cod", "has no label 'cod' (did you mean 'code'?); its labels: chat"),
        ("ood:unknown > 0.5", "ood:unknown is true or false"),
        ("has_code:code > 2", "has_code:code has no value that rules can compare"),
        ("tokens:prompt in 4", "'in' needs a list of values"),
        ("tokens:prompt > [1, 2]", "'>' compares with one value; use 'in' for a list"),
        ("tokens:prompt >", "cannot read the comparison 'tokens:prompt >'"),
        ({"signal": "tokens:prompt", "op": "~", "value": 1}, "Input should be '>', '>='"),
    ],
)
def test_bad_comparisons_fail_at_load_with_their_path(rule: object, message: str) -> None:
    found = problems({"any": ["keyword:x", rule]})
    assert len(found) == 1, found
    where, text = found[0]
    assert where.startswith("decisions[0].when.any[1]"), where
    assert message in text, text


def test_the_config_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "upstreams: [{name: u, base_url: 'http://x/v1'}]\n"
        "models: [{name: a, upstream: u}]\n"
        "signals: [{kind: complexity, name: hard}]\n"
        "decisions: [{name: d, when: 'complexity:hard >= 2', models: [a]}]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "decisions[0].when: the threshold 2 is outside the range" in str(info.value)
    assert str(info.value).endswith("(line 4)")


def test_problems_name_the_line_of_their_yaml_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "upstreams: [{name: u, base_url: 'http://x/v1'}]\n"
        "models: [{name: a, upstream: u}]\n"
        "signals:\n"
        "  - {kind: tokens, name: prompt}\n"
        "decisions:\n"
        "  - name: ok\n"
        "    when: tokens:prompt > 5\n"
        "    models: [a]\n"
        "  - name: bad\n"
        "    when:\n"
        "      all:\n"
        "        - tokens:prompt > 5\n"
        "        - tokens:promt < 3\n"
        "    models: [nope]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        (
            "decisions[1].when.all[1]",
            "unknown signal 'tokens:promt'; did you mean 'tokens:prompt'? (line 13)",
        ),
        ("decisions[1].models[0]", "unknown model 'nope'; known: a (line 14)"),
    ]


def test_labels_of_a_head_of_your_own_are_not_checked() -> None:
    assert when("domain:mine == cooking") == Comparison(
        signal="domain:mine", op="==", value="cooking"
    )


def test_a_signal_whose_name_has_a_dot_is_not_a_field() -> None:
    cfg = parse_config(
        {
            **BASE,
            "signals": [{"kind": "tokens", "name": "v1.2"}],
            "decisions": [{"name": "d", "when": "tokens:v1.2 < 10", "models": ["a"]}],
        }
    )
    assert cfg.decisions[0].when.signal == "tokens:v1.2"  # type: ignore[union-attr]


def test_a_signal_of_a_plugin_kind_without_a_spec_is_not_comparable() -> None:
    from crossroads.config.schema import declared_value_spec

    class NoSpec:
        kind = "nospec"

    assert declared_value_spec(NoSpec()) is None


def test_every_builtin_kind_declares_its_value() -> None:
    from crossroads.registry import SIGNALS
    from crossroads.signals import signal_kinds

    signal_kinds()
    declared = {kind: SIGNALS.get(kind).value_spec for kind in SIGNALS.names()}
    assert declared["keyword"].type == declared["regex"].type == "count"  # type: ignore[union-attr]
    assert declared["tokens"].type == "count"  # type: ignore[union-attr]
    assert declared["has_code"] is None  # "fence" or a partial line count
    for kind in ("complexity", "jailbreak", "budget"):
        spec = declared[kind]
        assert spec is not None and (spec.type, spec.low, spec.high) == ("number", 0, 1)
    assert declared["embedding"].low == -1  # type: ignore[union-attr]
    assert declared["ood"].type == "flag"  # type: ignore[union-attr]
    assert declared["metadata"].nullable and declared["budget"].nullable  # type: ignore[union-attr]


def test_the_domain_spec_lists_the_builtin_heads_labels() -> None:
    pytest.importorskip("numpy")
    from crossroads.signals.domain import BUILTIN_LABELS, DomainSignal
    from crossroads.signals.heads import builtin_head_path, load_head

    assert set(BUILTIN_LABELS) == set(load_head(builtin_head_path("domain")).labels)
    assert DomainSignal.value_spec.labels == frozenset(BUILTIN_LABELS)  # type: ignore[union-attr]


def _holds(spec: object, value: object) -> bool:
    from crossroads.decisions import _ORDER

    when = spec.matched_when  # type: ignore[attr-defined]
    return value is not None and all(_ORDER[op](value, v) for op, v in when)


@pytest.mark.parametrize(
    ("signal", "texts"),
    [
        ({"kind": "tokens", "name": "t", "min": 3, "max": 6}, ["a", "a b c", "a b c d e f g"]),
        ({"kind": "keyword", "name": "t", "keywords": ["x", "y"]}, ["x", "none", "y y"]),
        ({"kind": "regex", "name": "t", "patterns": [r"\d+"]}, ["12", "none"]),
        ({"kind": "metadata", "name": "t", "source": "user", "values": ["ann"]}, ["ann", "bob"]),
    ],
)
def test_a_signal_matches_exactly_when_its_declared_comparisons_hold(
    signal: dict, texts: list[str]
) -> None:
    from crossroads.config.schema import declared_value_spec
    from crossroads.prompts import routing_request
    from crossroads.signals import build_signal

    cfg = parse_config({**BASE, "signals": [signal]})
    spec = declared_value_spec(cfg.signals[0])
    built = build_signal(cfg.signals[0])
    for text in texts:
        body = {"model": "auto", "messages": [{"role": "user", "content": text}], "user": text}
        result = built.compute(routing_request(body))
        assert result.matched is _holds(spec, result.value), (text, result)


def test_references_of_other_signals_are_not_read_as_comparisons() -> None:
    from crossroads.config.schema import declared_value_spec

    cfg = parse_config(
        {
            **BASE,
            "signals": [
                {"kind": "keyword", "name": "all", "keywords": ["x", "y"], "match": "all"},
                {"kind": "metadata", "name": "re", "source": "user", "pattern": "^a"},
                {"kind": "complexity", "name": "ends", "bands": ["easy", "hard"]},
                {"kind": "domain", "name": "sure", "labels": ["code"], "min_confidence": 0.5},
            ],
        }
    )
    assert [declared_value_spec(s).matched_when for s in cfg.signals] == [None] * 4  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("bands", "when"),
    [
        (["hard"], ((">=", 0.6),)),
        (["medium", "hard"], ((">=", 0.35),)),
        (["medium"], ((">=", 0.35), ("<", 0.6))),
        (["easy"], (("<", 0.35),)),
        (["easy", "medium"], (("<", 0.6),)),
        (["easy", "medium", "hard"], ()),
    ],
)
def test_complexity_bands_are_intervals_of_its_value(bands: list[str], when: tuple) -> None:
    from crossroads.config.schema import declared_value_spec
    from crossroads.signals.complexity import band_of

    cfg = parse_config({**BASE, "signals": [{"kind": "complexity", "name": "c", "bands": bands}]})
    spec = declared_value_spec(cfg.signals[0])
    assert spec is not None and spec.matched_when == when
    for p in (0.0, 0.2, 0.35, 0.5, 0.6, 0.9, 1.0):
        assert (band_of(p, 0.35, 0.6) in bands) is _holds(spec, p), p
