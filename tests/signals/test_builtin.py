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
        # IGNORECASE matches the long s (U+017F) as "s", which lowercasing does not: non-ASCII
        # text is never settled by the substring check
        ({"keywords": ["class"]}, "a cla\u017fs of its own", True),
        ({"keywords": ["pyth\u00f6n"]}, "PYTH\u00d6N", True),
        ({"keywords": ["rust", "python"]}, "no keyword here", False),
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
    assert hit.matched and (hit.value, hit.detail) == (1, "patterns[0]")  # never the text


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


EMAIL = r"[\w.+-]+@[\w-]+\.[\w.]+"


@pytest.mark.parametrize("match", ["any", "all"])
def test_regex_records_which_pattern_and_how_often_never_the_text(match: str) -> None:
    s = signal(kind="regex", name="pii", patterns=[r"\bssn\b", EMAIL], match=match)
    result = s.compute(req("ssn? write to alice@example.com or bob@example.org"))
    assert result.matched
    recorded = f"{result.value} {result.detail}"
    assert "alice" not in recorded and "example" not in recorded and "bob" not in recorded
    if match == "any":
        assert (result.value, result.detail) == (1, "patterns[0]")  # the first that matched
    else:
        assert (result.value, result.detail) == (3, "patterns[0],patterns[1]")


def test_keyword_records_which_keywords_and_how_often_never_the_text() -> None:
    s = signal(kind="keyword", name="k", keywords=["password", "api key"])
    result = s.compute(req("my PASSWORD is hunter2, the Api Key too; password again"))
    assert result.matched and (result.value, result.detail) == (3, "keywords[0],keywords[1]")
    every = signal(kind="keyword", name="k", keywords=["password", "rust"], match="all")
    result = every.compute(req("password only"))
    assert not result.matched and (result.value, result.detail) == (1, "keywords[0]")
    assert signal(kind="keyword", name="k", keywords=["x"]).compute(req("none")).value == 0


def test_record_match_records_the_text_with_secrets_and_pii_masked() -> None:
    s = signal(kind="regex", name="r", patterns=[r"contact \S+", r"ticket \w+"], record_match=True)
    hit = s.compute(req("please contact alice@example.com today"))
    assert hit.matched and hit.detail is not None
    assert hit.detail.startswith("patterns[0]: ") and "contact" in hit.detail
    assert "alice@example.com" not in hit.detail and "[redacted]" in hit.detail
    ticket = s.compute(req("see ticket ABC"))
    assert ticket.detail == "patterns[1]: 'ticket ABC'"
    k = signal(kind="keyword", name="k", keywords=["Python"], record_match=True)
    assert k.compute(req("I like PYTHON")).detail == "keywords[0]: 'PYTHON'"
    huge = signal(kind="regex", name="r", patterns=[r"x+"], record_match=True)
    assert len(huge.compute(req("x" * 10_000)).detail or "") < 400  # bounded


def test_metadata_value_is_bounded() -> None:
    caller = Caller(user="u" * 10_000)
    result = signal(kind="metadata", name="m", source="user", pattern="^u").compute(
        req("x", caller)
    )
    assert result.matched and len(str(result.value)) < 300 and "chars" in str(result.value)
