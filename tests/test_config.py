from __future__ import annotations

from pathlib import Path

import pytest

from crossroads.config import load_config, parse_config
from crossroads.exceptions import ConfigError

MINIMAL = """
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
"""
BASE = {
    "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
    "models": [{"name": "a", "upstream": "u"}],
}


def problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, **data})
    return info.value.problems


def test_minimal_config_is_ten_lines_and_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL)
    assert len(MINIMAL.strip().splitlines()) <= 11
    cfg = load_config(path)
    assert cfg.upstreams[0].kind == "openai"
    assert cfg.model("big").price.output == 3.0
    assert cfg.entrypoints[0].name == "auto"
    assert cfg.server.port == 8400
    assert cfg.store.traces == "sqlite"


def test_unknown_signal_in_nested_rule_is_reported_with_its_path() -> None:
    found = problems(
        {
            "signals": [{"kind": "keyword", "name": "urgent", "keywords": ["asap"]}],
            "decisions": [
                {"name": "a", "when": "keyword:urgent", "models": ["a"]},
                {"name": "b", "when": "keyword:urgent", "models": ["a"]},
                {"name": "c", "when": {"all": ["keyword:urgnt"]}, "models": ["a"]},
            ],
        }
    )
    assert (
        "decisions[2].when.all[0]",
        "unknown signal 'keyword:urgnt'; did you mean 'keyword:urgent'?",
    ) in found


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = problems(
        {
            "signals": [{"kind": "keyword", "name": "k", "keywords": ["x"]}],
            "decisions": [
                {
                    "name": "d",
                    "when": {"any": ["keyword:k", {"not": "tokens:long"}, "bare"]},
                    "models": ["a", "zz"],
                }
            ],
        }
    )
    paths = [p for p, _ in found]
    assert paths == [
        "decisions[0].when.any[1].not",
        "decisions[0].when.any[2]",
        "decisions[0].models[1]",
    ]


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"signals": [{"kind": "keywrd", "name": "k"}]}, "signals[0]", "unknown kind 'keywrd'"),
        ({"signals": [{"name": "k"}]}, "signals[0]", "'kind' is required"),
        (
            {"signals": [{"kind": "tokens", "name": "t", "min": 5, "max": 2}]},
            "signals[0]",
            "max (2) must be greater",
        ),
        (
            {"signals": [{"kind": "regex", "name": "r", "patterns": ["(unclosed"]}]},
            "signals[0].patterns",
            "not a valid regex",
        ),
        (
            {"signals": [{"kind": "metadata", "name": "m", "source": "header", "values": ["x"]}]},
            "signals[0]",
            "needs 'header",
        ),
        (
            {"upstreams": [{"name": "u", "base_url": "http://x", "api_key": "sk-123"}]},
            "upstreams[0]",
            "api_key_env",
        ),
        (
            {"upstreams": [{"name": "u", "kind": "azure", "base_url": "http://x"}]},
            "upstreams[0]",
            "unknown kind 'azure'",
        ),
        ({"upstreams": [{"name": "u", "base_url": "ftp://x"}]}, "upstreams[0].base_url", "http://"),
        (
            {"models": [{"name": "a", "upstream": "nope"}]},
            "models[0].upstream",
            "unknown upstream 'nope'",
        ),
        (
            {"models": [{"name": "a", "upstream": "u", "price": {"input": -1}}]},
            "models[0].price.input",
            "greater than or equal",
        ),
        (
            {"models": [{"name": "a", "upstream": "u", "colour": "red"}]},
            "models[0].colour",
            "unknown field",
        ),
        (
            {"decisions": [{"name": "d", "when": {"all": [{"foo": 1}]}, "models": ["a"]}]},
            "decisions[0].when.all[0]",
            "a rule is",
        ),
        (
            {"decisions": [{"name": "d", "when": "x:y", "models": ["a"], "selection": "chepest"}]},
            "decisions[0].selection",
            "unknown method 'chepest'",
        ),
        (
            {
                "decisions": [
                    {
                        "name": "d",
                        "when": "x:y",
                        "models": ["a"],
                        "selection": {"method": "weighted", "weights": {"b": 1}},
                    }
                ]
            },
            "decisions[0].selection.weights",
            "'b' is not one of",
        ),
        (
            {"models": [{"name": "a", "upstream": "u"}, {"name": "a", "upstream": "u"}]},
            "models",
            "defined more than once",
        ),
        ({"entrypoints": [{"name": "a"}]}, "entrypoints[0].name", "also a model name"),
        ({"store": {"traces": "mongodb://x"}}, "store.traces", "unknown trace store"),
        ({"server": {"port": 70000}}, "server.port", "less than or equal"),
    ],
)
def test_invalid_configs_name_the_field_and_the_fix(data: dict, path: str, fragment: str) -> None:
    found = problems(data)
    assert any(p == path and fragment in m for p, m in found), found


def test_env_vars_expand_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_URL", "http://10.0.0.5:8000/v1")
    cfg = parse_config(
        {
            "upstreams": [
                {"name": "u", "base_url": "${VLLM_URL}"},
                {"name": "v", "base_url": "${OTHER_URL:-http://fallback/v1}"},
            ],
            "models": [{"name": "a", "upstream": "u"}],
        }
    )
    assert cfg.upstreams[0].base_url == "http://10.0.0.5:8000/v1"
    assert cfg.upstreams[1].base_url == "http://fallback/v1"


def test_missing_env_var_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_URL", raising=False)
    with pytest.raises(ConfigError, match="NOPE_URL is not set"):
        parse_config(
            {
                "upstreams": [{"name": "u", "base_url": "${NOPE_URL}"}],
                "models": [{"name": "a", "upstream": "u"}],
            }
        )


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("upstreams:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML: line \d+, column \d+"):
        load_config(path)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_config(tmp_path / "empty.yaml")


def test_default_decision_falls_back_to_first_model() -> None:
    cfg = parse_config(BASE)
    assert cfg.default_decision.models == ["a"]
    assert cfg.default_decision.selection.method == "first"


def _planned(plan: dict, name: str = "default") -> dict:
    return {
        "models": [{"name": "a", "upstream": "u"}, {"name": "b", "upstream": "u"}],
        "default": {"name": name, "models": ["a"], "plan": plan},
    }


@pytest.mark.parametrize(
    ("plan", "path", "fragment"),
    [
        (
            {"kind": "cascade", "stages": [{"models": ["a"]}, {"models": ["b"]}]},
            "default.plan",
            "stages[0] has no 'accept' rules",
        ),
        (
            {
                "kind": "cascade",
                "stages": [{"models": ["a"], "accept": [{"rule": "agreement"}]}, {"models": ["b"]}],
            },
            "default.plan",
            "stages[0]: agreement needs 2 answers",
        ),
        (
            {
                "kind": "cascade",
                "stages": [{"models": ["zz"], "accept": [{"rule": "checks"}]}, {"models": ["b"]}],
            },
            "default.plan.stages[0].models[0]",
            "unknown model 'zz'",
        ),
        ({"kind": "cascade", "stages": [{"models": ["a"]}]}, "default.plan.stages", "at least 2"),
        (
            {"kind": "fanout", "models": ["a", "b"], "merge": "judge"},
            "default.plan",
            "needs 'judge'",
        ),
        (
            {"kind": "fanout", "models": ["a", "b"], "merge": "best_of"},
            "default.plan",
            "needs 'verifier'",
        ),
        (
            {
                "kind": "cascade",
                "stages": [{"models": ["a"], "accept": [{"rule": "psychic"}]}, {"models": ["b"]}],
            },
            "default.plan.stages[0].accept[0]",
            "unknown rule 'psychic'",
        ),
        ({"kind": "teleport"}, "default.plan", "unknown kind 'teleport'"),
        (
            {"kind": "cache", "then": {"kind": "fanout", "models": ["a", "q"]}},
            "default.plan.then.models[1]",
            "unknown model",
        ),
    ],
)
def test_invalid_plans_name_the_field(plan: dict, path: str, fragment: str) -> None:
    found = problems(_planned(plan))
    assert any(p.startswith(path) and fragment in m for p, m in found), found


def test_a_plan_on_a_decision_named_explicit_is_refused() -> None:
    plan = {"kind": "fanout", "models": ["a", "b"]}
    found = problems(_planned(plan, name="explicit"))
    assert any("explicit" in m for _, m in found), found


def test_a_valid_cascade_parses() -> None:
    plan = {
        "kind": "cascade",
        "stages": [
            {
                "models": ["a", "b"],
                "accept": [{"rule": "checks"}, {"rule": "agreement", "answer": "number"}],
            },
            {"models": ["b"]},
        ],
    }
    cfg = parse_config({**BASE, **_planned(plan)})
    assert cfg.default is not None and cfg.default.plan.stages[0].accept[1].answer == "number"


def test_state_backends_and_budget_periods_are_checked() -> None:
    from crossroads.config import StateConfig

    assert StateConfig(backend="redis://10.0.0.5:6379/0").backend.startswith("redis://")
    assert StateConfig(backend="sqlite:////tmp/state.db").backend.endswith("state.db")
    with pytest.raises(ValueError, match="unknown state backend 'mongo://x'"):
        StateConfig(backend="mongo://x")
    from crossroads.config import PolicyConfig

    with pytest.raises(ValueError, match="period 'day' has more than one budget"):
        PolicyConfig(budgets=[{"usd": 1, "period": "day"}, {"usd": 2, "period": "day"}])
    assert not PolicyConfig().limited and PolicyConfig(rpm=5).limited
