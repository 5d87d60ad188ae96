from __future__ import annotations

from typing import Any

import pytest

from crossroads.config import parse_config
from crossroads.prompts import routing_request
from crossroads.signals import build_signal
from crossroads.types import Caller


def signal(**data: Any):
    cfg = parse_config(
        {
            "upstreams": [{"name": "u", "base_url": "http://x/v1"}],
            "models": [{"name": "a", "upstream": "u"}],
            "signals": [data],
        }
    )
    return build_signal(cfg.signals[0])


def req(text: str, caller: Caller | None = None, **kw: Any):
    return routing_request(
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": text},
            ],
            **kw,
        },
        caller=caller,
    )


@pytest.mark.parametrize(
    ("options", "text", "expected"),
    [
        ({}, "Please fix my Python code", True),
        ({}, "pythonic is not python-free", True),  # 'python' bounded by '-'
        ({}, "pythonic ideas", False),
        ({"word_boundary": False}, "pythonic ideas", True),
        ({"case_sensitive": True}, "PYTHON", False),
        ({"keywords": ["c++"]}, "I write C++ daily", True),
        ({"keywords": ["c++"]}, "I write abc++ daily", False),
        ({"keywords": ["python", "rust"], "match": "all"}, "python and rust", True),
        ({"keywords": ["python", "rust"], "match": "all"}, "python only", False),
    ],
)
def test_keyword(options: dict, text: str, expected: bool) -> None:
    s = signal(kind="keyword", name="k", **{"keywords": ["python"], **options})
    assert s.compute(req(text)).matched is expected


def test_keyword_scope_last_user_ignores_system_prompt() -> None:
    s = signal(kind="keyword", name="k", keywords=["brief"], scope="last_user")
    assert s.compute(req("hello")).matched is False
    assert (
        signal(kind="keyword", name="k", keywords=["brief"]).compute(req("hello")).matched is True
    )


def test_regex_any_and_all() -> None:
    s = signal(kind="regex", name="r", patterns=[r"\b\d{3}-\d{4}\b", r"urgent"], match="all")
    assert s.compute(req("call 555-1234, urgent")).matched
    assert not s.compute(req("call 555-1234")).matched
    hit = signal(kind="regex", name="r", patterns=[r"\d{3}-\d{4}"]).compute(req("call 555-1234"))
    assert hit.matched and hit.value == "555-1234"


def test_tokens_window_counts_real_tokens() -> None:
    s = signal(kind="tokens", name="t", min=50, max=500)
    short, mid = s.compute(req("hi")), s.compute(req("hello " * 100))
    assert not short.matched and short.value < 50
    assert mid.matched and 100 <= mid.value < 500


def test_metadata_sources() -> None:
    caller = Caller(key_name="team-a", user=None, headers={"x-tier": "gold"})
    assert (
        signal(kind="metadata", name="m", source="key", values=["team-a"])
        .compute(req("x", caller))
        .matched
    )
    assert (
        signal(kind="metadata", name="m", source="header", header="X-Tier", pattern="^go")
        .compute(req("x", caller))
        .matched
    )
    assert (
        not signal(kind="metadata", name="m", source="user", values=["bob"])
        .compute(req("x", caller))
        .matched
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```\nprint(1)\n```", True),
        ("def f(x):\n    return x + 1", True),
        ("int main() {\n  return 0;\n}", True),
        ("SELECT name FROM users WHERE id = 1;\nUPDATE t SET a = 1 WHERE b = 2;", True),
        ("What is the capital of France? I think it is Paris.", False),
        ("Dear team,\nthanks for the update.\nBest, Ann", False),
    ],
)
def test_has_code(text: str, expected: bool) -> None:
    assert signal(kind="has_code", name="c").compute(req(text)).matched is expected


def test_routing_request_reads_parts_and_needs() -> None:
    r = routing_request(
        {
            "model": "auto",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                    ],
                }
            ],
            "response_format": {"type": "json_object"},
            "max_tokens": 50,
        }
    )
    assert r.text == "what is this" and r.last_user_text == "what is this"
    assert r.needs == {"vision", "json"} and r.max_output_tokens == 50
    completion = routing_request({"model": "auto", "prompt": [1, 2, 3]}, "completions")
    assert completion.prompt_tokens == 3
