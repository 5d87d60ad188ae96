"""Key rotation across replicas: two ``crossroads serve`` processes share a key store; a key
rotated or revoked (by the CLI, or by one replica's admin API) is refused by both from the
moment the command returns. Nothing either process logs or traces holds a key, the admin
key or the prompt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

ADMIN_KEY = "admin-secret-for-replica-tests-0001"
PROMPT = "the launch plan for project kingfisher-lantern"


def gateway_config(upstream: str, key_spec: str) -> dict[str, Any]:
    return {
        "upstreams": [{"name": "fake", "base_url": upstream, "timeouts": {"total": 10}}],
        "models": [
            {"name": "small", "upstream": "fake", "upstream_model": "s", "price": {"input": 0.1, "output": 0.2}}
        ],
        "default": {"models": ["small"]},
        "server": {"admin_key_env": "CROSSROADS_TEST_ADMIN_KEY"},
        "store": {"keys": key_spec, "flush_interval_ms": 10},
    }  # fmt: skip


def keys_cli(config: Path, *args: str) -> dict[str, Any]:
    """``crossroads keys ...`` in its own process, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "crossroads.cli", "keys", *args, "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}


def status(replica: GatewayProcess, key: str) -> int:
    body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(
        replica.base_url + "/chat/completions", json=body, headers=headers, timeout=20
    ).status_code


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_keys(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared/keys.db"
    return str(request.getfixturevalue("postgres_url"))


def test_rotation_and_revocation_reach_both_replicas_at_once(
    tmp_path: Path, shared_keys: str, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSROADS_TEST_ADMIN_KEY", ADMIN_KEY)
    cfg = gateway_config(fake_upstream.base_url, shared_keys)
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump(cfg))
    with GatewayProcess(cfg, tmp_path / "a") as a, GatewayProcess(cfg, tmp_path / "b") as b:
        made = keys_cli(config, "create", "ci")
        first = made["key"]
        assert status(a, first) == status(b, first) == 200

        second = keys_cli(config, "rotate", "ci")["key"]
        assert (status(a, first), status(b, first)) == (401, 401)
        assert (status(a, second), status(b, second)) == (200, 200)

        # through one replica's admin API: the other refuses the old value on its next request
        rotated = httpx.post(
            f"{a.url}/v1/crossroads/admin/keys/{made['id']}/rotate",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=20,
        )
        assert rotated.status_code == 200, rotated.text
        third = rotated.json()["key"]
        assert (status(b, second), status(a, second)) == (401, 401)
        assert (status(b, third), status(a, third)) == (200, 200)

        keys_cli(config, "revoke", "ci")
        assert (status(a, third), status(b, third)) == (401, 401)
        logs = a.log + b.log

    traces = b"".join(
        path.read_bytes() for path in tmp_path.glob("*/data/traces.db*") if path.is_file()
    )
    assert traces, "the replicas wrote traces"
    for secret in (first, second, third, ADMIN_KEY, PROMPT):
        assert secret not in logs
        assert secret.encode() not in traces
    assert b"ci" in traces  # the traces name the key
