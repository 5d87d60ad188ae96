from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crossroads import __version__
from crossroads.cli import app

runner = CliRunner()
GOOD = """
upstreams: [{name: u, base_url: "http://127.0.0.1:9/v1"}]
models:
  - {name: small, upstream: u, price: {input: 0.1, output: 0.2}}
  - {name: big, upstream: u, price: {input: 3, output: 15}}
signals: [{kind: keyword, name: code, keywords: [python]}]
decisions: [{name: coding, when: "keyword:code", models: [big, small], selection: cheapest}]
default: {models: [small]}
"""
BAD = """
upstreams: [{name: u, base_url: "http://x/v1"}]
models: [{name: a, upstream: u}]
signals: [{kind: keyword, name: urgent, keywords: [asap]}]
decisions:
  - {name: a, when: "keyword:urgent", models: [a]}
  - {name: b, when: "keyword:urgent", models: [a]}
  - {name: c, when: {all: ["keyword:urgnt"]}, models: [a]}
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_validate_reports_paths_and_exits_non_zero(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", write(tmp_path, BAD)])
    assert result.exit_code == 1
    assert "decisions[2].when.all[0]: unknown signal 'keyword:urgnt'" in result.output


def test_validate_warns_about_shadowed_rules_but_passes(tmp_path: Path) -> None:
    text = BAD.replace('{all: ["keyword:urgnt"]}', '"keyword:urgent"')
    result = runner.invoke(app, ["validate", write(tmp_path, text)])
    assert result.exit_code == 0
    assert "warning: entrypoint 'auto': decision 'b' never matches" in result.output


def test_route_shows_the_decision_without_calling_a_model(tmp_path: Path) -> None:
    config = write(tmp_path, GOOD)
    result = runner.invoke(app, ["route", "write python code", "-c", config, "--json"])
    assert result.exit_code == 0, result.output
    route = json.loads(result.output)
    assert route["decision"] == "coding" and route["model"] == "small"  # cheapest of the two
    assert route["signals"]["keyword:code"]["matched"] is True
    assert {c["model"] for c in route["candidates"]} == {"big", "small"}
    table = runner.invoke(app, ["route", "hello", "-c", config])
    assert table.exit_code == 0 and "default" in table.output and "small" in table.output


def test_route_with_an_unknown_model_fails_cleanly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["route", "hi", "-c", write(tmp_path, GOOD), "--model", "nope"])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_traces_on_an_empty_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["traces", "-c", write(tmp_path, GOOD), "--json"])
    assert result.exit_code == 0 and result.output == ""


def test_help_everywhere_and_version() -> None:
    for command in ([], ["serve"], ["validate"], ["route"], ["traces"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
    assert __version__ in runner.invoke(app, ["--version"]).output


def test_version_verbose_lists_model_licences() -> None:
    out = runner.invoke(app, ["--version", "--verbose"]).output
    assert __version__ in out
    for needle in ("SmolLM2", "Apache-2.0", "Gemma Terms of Use", "all-MiniLM-L6-v2"):
        assert needle in out
    assert "Usage" in runner.invoke(app, []).output


RULES = """
upstreams: [{name: u, base_url: "http://127.0.0.1:9/v1"}]
models:
  - {name: small, upstream: u, price: {input: 0.1, output: 0.2}}
  - {name: big, upstream: u, price: {input: 3, output: 15}, context_window: 100000}
signals:
  - {kind: keyword, name: code, keywords: [python]}
  - {kind: tokens, name: prompt}
  - {kind: metadata, name: op, source: operation, values: [chat]}
decisions:
  - {name: long, priority: 20, when: "tokens:prompt >= 3000", models: [big]}
  - {name: coding, priority: 10, when: {all: ["keyword:code", "metadata:op in [chat]"]},
     models: [big, small], selection: cheapest}
  - {name: python, priority: 5, when: "keyword:code >= 2", models: [big]}
default: {models: [small]}
"""


def test_validate_fails_on_a_threshold_outside_the_signals_range(tmp_path: Path) -> None:
    path = write(tmp_path, RULES.replace(">= 3000", ">= -1"))
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 1
    assert f"✗ {path}" in result.output
    assert "decisions[0].when: the threshold -1 is outside the range of tokens:prompt" in (
        result.output
    )


def test_validate_warns_and_strict_fails_on_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, RULES.replace('"keyword:code >= 2"', '"keyword:code >= 0"'))
    result = runner.invoke(app, ["validate", path])
    assert result.exit_code == 0, result.output
    assert "warning: decision 'python': the comparison 'keyword:code >= 0' is always true" in (
        result.output
    )
    strict = runner.invoke(app, ["validate", "--strict", path])
    assert strict.exit_code == 1 and "✗" in strict.output and "always true" in strict.output
    clean = runner.invoke(app, ["validate", "--strict", write(tmp_path, RULES, "ok.yaml")])
    assert clean.exit_code == 0 and "warning" not in clean.output, clean.output


def test_route_explain_shows_every_rule_and_why(tmp_path: Path) -> None:
    config = write(tmp_path, RULES)
    result = runner.invoke(
        app, ["route", "python python please", "-c", config, "--json", "--explain"]
    )
    assert result.exit_code == 0, result.output
    route = json.loads(result.output)
    assert route["decision"] == "coding" and route["model"] == "small"
    assert route["rules"] == [
        {
            "decision": "long",
            "priority": 20,
            "status": "no",
            "why": f"(tokens:prompt={route['signals']['tokens:prompt']['value']} >= 3000)=F",
        },
        {
            "decision": "coding",
            "priority": 10,
            "status": "matched",
            "why": "all(keyword:code=T, (metadata:op=chat in [chat])=T)=T",
        },
        {
            "decision": "python",
            "priority": 5,
            "status": "not tried",
            "why": "(keyword:code=2 >= 2)=T",
        },
        {"decision": "default", "priority": None, "status": "not tried", "why": "default"},
    ]
    assert route["not_computed"] == []
    assert all(s["elapsed_ms"] >= 0 for s in route["signals"].values())
    table = runner.invoke(
        app, ["route", "python python", "-c", config, "--explain"], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0, table.output
    out = " ".join(table.output.split())
    for needle in (
        "tokens:prompt",  # signals, with their values and times
        "(metadata:op=chat in [chat])=T",  # a rule's parts, rich markup left alone
        "not tried",
        "matched",
        "estimated cost",
        "decision coding (cheapest) → small",
    ):
        assert needle in out, needle


def test_route_explain_of_a_configured_model_tries_no_rule(tmp_path: Path) -> None:
    config = write(tmp_path, RULES)
    result = runner.invoke(app, ["route", "python", "-c", config, "--model", "big", "--explain"])
    assert result.exit_code == 0, result.output
    assert "no rules tried" in result.output and "explicit" in result.output
