"""The built-in configuration used when ``crossroads serve`` gets no ``-c``.

``default.yaml`` holds the local pool (two tiny models run by crossroads itself) and its
policy: chat to SmolLM2, text to continue (``/v1/completions`` or "continue: ...") to the
Gemma base model, each the other's fallback. :func:`default_config` adds the providers
found in the environment and, when any is found, a cheap-for-easy, strong-for-hard policy.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import yaml

from crossroads.config import Config, parse_config
from crossroads.exceptions import ConfigError

HARD_SIGNALS: list[dict[str, Any]] = [
    {"kind": "has_code", "name": "code"},
    {"kind": "tokens", "name": "long_prompt", "min": 4000},
    {
        "kind": "keyword",
        "name": "reasoning",
        "keywords": ["prove", "step by step", "analyze", "analyse", "derive", "debug",
                     "refactor", "optimize", "architecture", "trade-off", "trade-offs"],
    },
]  # fmt: skip


def builtin_data() -> dict[str, Any]:
    """The packaged ``default.yaml`` as a dict (local models only)."""
    text = files("crossroads.defaults").joinpath("default.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def default_config_data(
    env: Mapping[str, str] | None = None,
    *,
    ollama_url: str | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The effective default config as plain data (what ``crossroads init`` writes).

    ``ollama_url`` (default ``$CROSSROADS_OLLAMA_URL``, else ``http://127.0.0.1:11434``;
    empty: do not probe) is where to look for Ollama. Appends one line per provider looked
    for, and per missing local model, to ``notes``.
    Raises :class:`ConfigError` only when nothing at all can serve: no local model
    installed and no provider found.
    """
    from crossroads.defaults.providers import detect_providers
    from crossroads.local.catalog import missing_requirements

    env = os.environ if env is None else env
    notes = [] if notes is None else notes
    if ollama_url is None:
        ollama_url = env.get("CROSSROADS_OLLAMA_URL", "http://127.0.0.1:11434")
    data = copy.deepcopy(builtin_data())
    _drop_uninstalled_local_models(data, missing_requirements, notes)
    providers, found_notes = detect_providers(env, ollama_url=ollama_url or None)
    notes.extend(found_notes)
    tiers: dict[str, list[str]] = {"cheap": [], "strong": [], "free": []}
    for provider in providers:
        data["upstreams"].append(provider.upstream)
        for tier, model in provider.models:
            data["models"].append(model)
            tiers[tier].append(model["name"])
    local = [m["name"] for m in data["models"] if m["name"] in _local_model_names(data)]
    if not data["models"]:
        raise ConfigError(
            [("", "nothing to route to: no local model is installed and no provider was found. "
                  "Install the local models (see docs/local-models.md), set OPENAI_API_KEY or "
                  "ANTHROPIC_API_KEY, start Ollama, or pass -c path/to/config.yaml"),
             *(("", note.strip()) for note in notes)],
            source="built-in config",
        )  # fmt: skip
    if providers:
        data["signals"].extend(HARD_SIGNALS)
        data["decisions"].append(
            {
                "name": "hard",
                "description": "code, long prompts and reasoning words go to the strongest model",
                "priority": 20,
                "when": {"any": ["has_code:code", "tokens:long_prompt", "keyword:reasoning"]},
                "models": tiers["strong"] + tiers["cheap"] + tiers["free"] + local,
            }
        )
        data["default"]["models"] = tiers["free"] + tiers["cheap"] + local + tiers["strong"]
        for decision in data["decisions"]:
            if decision["name"] == "continue_text":
                # base model first, then anything that serves /v1/completions or chat
                decision["models"] = (
                    [m for m in decision["models"] if m in local] + tiers["free"] + tiers["cheap"]
                )
    return data


def default_config(
    env: Mapping[str, str] | None = None,
    *,
    ollama_url: str | None = None,
    notes: list[str] | None = None,
) -> Config:
    """The embedded default config, with the providers found in ``env`` (default: os.environ)."""
    data = default_config_data(env, ollama_url=ollama_url, notes=notes)
    return parse_config(data, source="built-in config")


def render_yaml(data: Mapping[str, Any]) -> str:
    """``data`` as an editable YAML file with a header."""
    header = (
        "# crossroads config, written by `crossroads init` from the built-in default.\n"
        "# Edit it, check it with `crossroads validate FILE`, serve it with `crossroads serve -c FILE`.\n"
        "# Reference: docs/configuration.md. Upstreams of kind `local` are started by crossroads.\n"
    )
    body: str = yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=100)
    return header + body


def _local_model_names(data: Mapping[str, Any]) -> set[str]:
    local_upstreams = {u["name"] for u in data["upstreams"] if u.get("kind") == "local"}
    return {m["name"] for m in data["models"] if m.get("upstream") in local_upstreams}


def _drop_uninstalled_local_models(data: dict[str, Any], missing: Any, notes: list[str]) -> None:
    gone_upstreams = set()
    for upstream in data["upstreams"]:
        if upstream.get("kind") != "local":
            continue
        needs = missing([upstream["model"]])
        if needs:
            gone_upstreams.add(upstream["name"])
            notes.append(f"  local {upstream['model']}: not installed ({'; '.join(needs)})")
    if not gone_upstreams:
        return
    gone = {m["name"] for m in data["models"] if m.get("upstream") in gone_upstreams}
    data["upstreams"] = [u for u in data["upstreams"] if u["name"] not in gone_upstreams]
    data["models"] = [m for m in data["models"] if m["name"] not in gone]
    for model in data["models"]:
        model["fallbacks"] = [f for f in model.get("fallbacks", []) if f not in gone]
    for decision in [*data["decisions"], data["default"]]:
        decision["models"] = [m for m in decision["models"] if m not in gone]
    data["decisions"] = [d for d in data["decisions"] if d["models"]]


def write_default_config(
    path: Any,
    *,
    force: bool = False,
    env: Mapping[str, str] | None = None,
    ollama_url: str | None = None,
    notes: list[str] | None = None,
) -> Any:
    """Write the effective default config to ``path`` (validated first); returns the path.

    Raises :class:`CrossroadsError` if the file exists and ``force`` is false.
    """
    from pathlib import Path

    from crossroads.exceptions import CrossroadsError

    target = Path(path)
    if target.exists() and not force:
        raise CrossroadsError(f"{target} already exists: pass --force to overwrite it")
    data = default_config_data(env, ollama_url=ollama_url, notes=notes)
    parse_config(copy.deepcopy(data), source="built-in config")
    target.write_text(render_yaml(data), encoding="utf-8")
    return target
