"""Providers found in the environment, added to the built-in config at start-up.

``OPENAI_API_KEY`` → OpenAI models, ``ANTHROPIC_API_KEY`` → Anthropic models, an Ollama
answering on 127.0.0.1:11434 → its models. Nothing found is never an error. Prices are
USD per million tokens (list prices; edit them after ``crossroads init``).
"""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Tier = Literal["cheap", "strong", "free"]
OLLAMA_URL = "http://127.0.0.1:11434"
MAX_OLLAMA_MODELS = 8


@dataclass(slots=True)
class Provider:
    """What was found: an upstream entry and its models, each with a tier."""

    name: str
    upstream: dict[str, Any]
    models: list[tuple[Tier, dict[str, Any]]] = field(default_factory=list)


def _openai(env: Mapping[str, str]) -> Provider | None:
    if not env.get("OPENAI_API_KEY"):
        return None
    chat = {
        "context_window": 128000,
        "capabilities": ["tools", "json", "vision"],
        "serves": ["chat"],
    }
    return Provider(
        "OpenAI",
        {"name": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"},
        [
            ("cheap", {"name": "gpt-4o-mini", "upstream": "openai",
                       "price": {"input": 0.15, "output": 0.6}, **chat}),
            ("strong", {"name": "gpt-4.1", "upstream": "openai",
                        "price": {"input": 2.0, "output": 8.0}, **chat, "context_window": 1047576}),
        ],
    )  # fmt: skip


def _anthropic(env: Mapping[str, str]) -> Provider | None:
    if not env.get("ANTHROPIC_API_KEY"):
        return None
    chat = {
        "context_window": 200000,
        "capabilities": ["tools", "json", "vision"],
        "serves": ["chat"],
    }
    return Provider(
        "Anthropic",
        {"name": "anthropic", "kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        [
            ("cheap", {"name": "claude-haiku", "upstream": "anthropic",
                       "upstream_model": "claude-haiku-4-5", "price": {"input": 1.0, "output": 5.0},
                       **chat}),
            ("strong", {"name": "claude-sonnet", "upstream": "anthropic",
                        "upstream_model": "claude-sonnet-4-5",
                        "price": {"input": 3.0, "output": 15.0}, **chat}),
        ],
    )  # fmt: skip


def ollama_models(base: str = OLLAMA_URL, timeout: float = 0.5) -> list[str] | None:
    """Names of the generative models a local Ollama serves, or None if nothing answers."""
    try:
        with urllib.request.urlopen(f"{base}/api/tags", timeout=timeout) as response:
            data = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    names = []
    for entry in data.get("models", []) if isinstance(data, dict) else []:
        name = str(entry.get("name") or entry.get("model") or "")
        families = (entry.get("details") or {}).get("families") or []
        if name and "embed" not in name and not any("bert" in str(f) for f in families):
            names.append(name)
    return names


def _ollama(base: str, timeout: float) -> Provider | None:
    names = ollama_models(base, timeout)
    if not names:
        return None
    return Provider(
        "Ollama",
        {"name": "ollama", "base_url": f"{base}/v1"},
        [
            ("free", {"name": f"ollama/{n}", "upstream": "ollama", "upstream_model": n,
                      "context_window": 8192, "capabilities": ["json"]})
            for n in names[:MAX_OLLAMA_MODELS]
        ],
    )  # fmt: skip


def detect_providers(
    env: Mapping[str, str], *, ollama_url: str | None = OLLAMA_URL, timeout: float = 0.5
) -> tuple[list[Provider], list[str]]:
    """The providers found, and one human-readable line per provider looked for."""
    found: list[Provider] = []
    notes: list[str] = []
    openai = _openai(env)
    anthropic = _anthropic(env)
    if anthropic and importlib.util.find_spec("crossroads.dispatch.anthropic") is None:
        notes.append(
            "  Anthropic: ANTHROPIC_API_KEY is set, but this build has no Anthropic upstream"
        )
        anthropic = None
    ollama = _ollama(ollama_url, timeout) if ollama_url else None
    for label, provider, absent in (
        ("OpenAI", openai, "OPENAI_API_KEY not set"),
        ("Anthropic", anthropic, "ANTHROPIC_API_KEY not set"),
        (
            "Ollama",
            ollama,
            f"nothing answers on {ollama_url}"
            if ollama_url
            else "not probed (CROSSROADS_OLLAMA_URL is empty)",
        ),
    ):
        if provider is not None:
            found.append(provider)
            names = ", ".join(m["name"] for _, m in provider.models)
            notes.append(f"  {label}: found → {names}")
        elif not any(label in n for n in notes):
            notes.append(f"  {label}: {absent}")
    return found, notes
