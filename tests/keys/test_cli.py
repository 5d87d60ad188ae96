"""``crossroads keys``, ``crossroads teams`` and ``crossroads spend`` on both key stores."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from crossroads.cli import _register_plugins, app
from crossroads.keys import open_key_store
from crossroads.store.sqlite import SQLiteTraceStore
from crossroads.types import RecordedCaller, Route, Trace, Usage

runner = CliRunner()
_register_plugins()


def config(tmp_path: Path, key_spec: str, **store: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
                "models": [{"name": "small", "upstream": "u"}],
                "default": {"models": ["small"]},
                "teams": [{"name": "platform", "policy": {"rpm": 5}}],
                "store": {"keys": key_spec, **store},
            }
        )
    )
    return str(path)


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_keys_from_create_to_revoke(tmp_path: Path, key_spec: str) -> None:
    c = config(tmp_path, key_spec)
    made = json.loads(
        cli("keys", "create", "ci", "-c", c, "--team", "platform", "--rpm", "60",
            "--budget", "5/day", "--model", "small", "--meta", "tier=gold", "--json")
    )  # fmt: skip
    assert made["key"].startswith("cr-") and made["team"] == "platform"
    assert made["policy"] == {
        "models": ["small"],
        "rpm": 60,
        "budgets": [{"usd": 5.0, "period": "day"}],
        "metadata": {"tier": "gold"},
    }
    listed = cli("keys", "list", "-c", c)
    assert "1 keys" in listed and "ci" in listed and made["key"] not in listed
    shown = json.loads(cli("keys", "list", "-c", c, "--json"))
    assert shown["display"] == "cr-..." + made["key"][-4:] and "key" not in shown
    rotated = json.loads(cli("keys", "rotate", "ci", "-c", c, "--json"))
    assert rotated["id"] == made["id"] and rotated["key"] != made["key"]
    assert json.loads(cli("keys", "show", made["id"], "-c", c))["rotated_at"] is not None
    assert f"revoked key {made['id']}" in cli("keys", "revoke", "ci", "-c", c)
    assert cli("keys", "list", "-c", c, "--json") == ""
    assert json.loads(cli("keys", "list", "-c", c, "--all", "--json"))["status"] == "revoked"
    store = open_key_store(key_spec)
    store.start()
    assert [k.id for k in store.list_keys(include_revoked=True)] == [made["id"]]
    store.close()


def test_teams_and_errors(tmp_path: Path, key_spec: str) -> None:
    c = config(tmp_path, key_spec)
    assert "team search" in cli("teams", "set", "search", "-c", c, "--tpm", "1000")
    assert json.loads(cli("teams", "list", "-c", c, "--json"))["policy"] == {"tpm": 1000}
    cli("keys", "create", "bot", "-c", c, "--team", "search")
    for args, message in [
        (["keys", "create", "x", "-c", c, "--team", "ghosts"], "unknown team 'ghosts'"),
        (["keys", "create", "bot", "-c", c], "already named 'bot'"),
        (["keys", "revoke", "nobody", "-c", c], "no key with id or name 'nobody'"),
        (["teams", "delete", "search", "-c", c], "still has 1 active keys"),
        (["teams", "set", "platform", "-c", c], "declared in the config"),
        (["keys", "create", "y", "-c", c, "--policy", '{"rpm": "many"}'], "rpm"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)


def test_without_a_config_the_store_is_in_the_data_dir(tmp_path: Path) -> None:
    cli("keys", "create", "local")
    from crossroads.paths import data_dir

    assert (data_dir() / "keys.db").exists() and "local" in cli("keys", "list")


def test_spend_from_the_trace_store(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    store = SQLiteTraceStore(db, flush_interval_ms=5)
    for i, (key, cost) in enumerate([("ci", 0.25), ("ci", 0.5), ("bot", 1.0)]):
        store.record(
            Trace(f"t{i}", 1_700_006_400 + i, "auto", "chat", False,
                  route=Route(model="small", decision="d", selection="first"),
                  usage=Usage(10, 5), cost=cost, caller=RecordedCaller(key_name=key, team="t"))
        )  # fmt: skip
    store.close()
    c = config(tmp_path, "sqlite", traces=f"sqlite:///{db}")
    rows = [
        json.loads(line)
        for line in cli("spend", "-c", c, "--by", "key", "--json").split("\n")
        if line
    ]
    assert [(r["key"], r["requests"], r["cost"]) for r in rows] == [
        ("bot", 1, 1.0),
        ("ci", 2, 0.75),
    ]
    table = cli("spend", "-c", c, "--by", "team,day", "--since", "2023-11-15")
    assert "2023-11-15" in table and "total: 3 requests, $1.750000" in table
    assert cli("spend", "-c", c, "--since", "2023-11-16", "--json") == ""
    bad = runner.invoke(app, ["spend", "-c", c, "--by", "user"])
    assert bad.exit_code == 1 and "cannot group spend by user" in bad.output
