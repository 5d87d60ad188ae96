from __future__ import annotations

import pytest

from crossroads.redact import MAX_HEADERS, bounded, recorded_caller, scrub, scrub_secrets
from crossroads.types import Caller


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("Incorrect API key provided: sk-proj-abc1***************wxyz.", "abc1"),
        ("key sk-...wxyz rejected", "wxyz"),
        ("invalid x-api-key sk-ant-api03-AbCdEf123", "AbCdEf"),
        ("Authorization: Bearer tok_9f8e7d6c5b4a", "tok_9f8e"),
        ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSF"),
        ("token hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "hf_AbCd"),
        ("api_key=abc123 and password: 'hunter2'", "hunter2"),
    ],
)
def test_scrub_secrets_masks_keys_and_tokens(text: str, gone: str) -> None:
    out = scrub_secrets(text)
    assert gone not in out and "[redacted]" in out


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens: 200000 > 8192, the model's maximum context length is 1048576 tokens",
        "messages.1.content: Input should be a valid list; model 'claude-3-5-sonnet-20241022'",
        "This model's maximum context length is 128000 tokens. Please reduce the length.",
        "the task-force asked for a desk-lamp",
    ],
)
def test_scrub_secrets_leaves_ordinary_error_text_alone(text: str) -> None:
    assert scrub_secrets(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "alice.smith+work@example.co.uk",
        "4111 1111 1111 1111",
        "+1 555-123-4567",
        "123-45-6789",
        "10.20.30.40",
    ],
)
def test_scrub_masks_personal_data(text: str) -> None:
    assert scrub(f"see {text} now") == "see [redacted] now"


def test_bounded_marks_what_it_cut() -> None:
    assert bounded("abc", 5) == "abc"
    assert bounded("x" * 300) == "x" * 256 + "...[44 more chars]"


def test_recorded_caller_keeps_a_bounded_number_of_headers() -> None:
    caller = Caller(user="u" * 1000, headers={f"x-h{i}": "v" for i in range(MAX_HEADERS + 5)})
    recorded = recorded_caller(caller)
    assert len(recorded.headers) == MAX_HEADERS + 1  # and a marker of what was left out
    assert recorded.headers["..."] == "5 more headers not recorded"
    assert recorded.user is not None and len(recorded.user) < 300
    assert len(caller.headers) == MAX_HEADERS + 5 and len(caller.user or "") == 1000


def test_mask_pii_replaces_validated_findings_by_their_type() -> None:
    from crossroads.redact import mask_pii

    text = "jane@example.com paid with 4111 1111 1111 1111 on 2024-03-15 (order 4821937)"
    masked, count = mask_pii(text)
    assert masked == "[EMAIL] paid with [CREDIT_CARD] on 2024-03-15 (order 4821937)"
    assert count == 2
    assert mask_pii(text, ["email"]) == (text.replace("jane@example.com", "[EMAIL]"), 1)
    assert mask_pii("nothing here") == ("nothing here", 0)
