"""The redaction plan masks every text of a request and drops the body as received."""

from __future__ import annotations

from crossroads.config.plans import RedactPlan
from crossroads.plans.redact import Redaction
from crossroads.types import Message, Part, Request


def plan(**keys: object) -> Redaction:
    return Redaction(RedactPlan.model_validate({"kind": "redact", **keys})).prepare()


def test_messages_parts_and_prompt_are_masked_and_wire_dropped() -> None:
    request = Request(
        "chat",
        "auto",
        "openai_chat",
        messages=[
            Message("system", "Escalate to ops@example.com"),
            Message("user", [Part("text", "card 4111111111111111"), Part("image", url="x")]),
        ],
        wire={"messages": [{"role": "user", "content": "card 4111111111111111"}]},
    )
    assert plan().redact(request) == 2
    assert request.messages[0].content == "Escalate to [EMAIL]"
    parts = request.messages[1].content
    assert isinstance(parts, list) and parts[0].text == "card [CREDIT_CARD]"
    assert parts[1].url == "x" and request.wire is None
    completion = Request("completions", "auto", "openai_completions", prompt="ip 203.0.113.45")
    assert plan().redact(completion) == 1 and completion.prompt == "ip [IP_ADDRESS]"


def test_only_the_listed_types_are_masked_and_clean_requests_pass_as_received() -> None:
    request = Request(
        "chat",
        "auto",
        "openai_chat",
        messages=[Message("user", "mail ops@example.com, card 4111111111111111")],
        wire={"kept": True},
    )
    assert plan(types=["credit_card"]).redact(request) == 1
    assert request.messages[0].content == "mail ops@example.com, card [CREDIT_CARD]"
    clean = Request("chat", "auto", "openai_chat", [Message("user", "hi")], wire={"kept": True})
    assert plan().redact(clean) == 0 and clean.wire == {"kept": True}
