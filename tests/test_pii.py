"""The PII detectors: what each finds, and the look-alikes its validator turns away."""

from __future__ import annotations

import pytest

from crossroads.pii import count_types, entropy, find_pii, iban_valid, luhn_valid


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in find_pii(text)]


@pytest.mark.parametrize(
    ("text", "kind", "match"),
    [
        ("write to maria.gonzalez@example.com today", "email", "maria.gonzalez@example.com"),
        ("call (415) 555-2671 now", "phone", "(415) 555-2671"),
        ("London +44 20 7946 0958", "phone", "+44 20 7946 0958"),
        ("card 4111 1111 1111 1111 ok", "credit_card", "4111 1111 1111 1111"),
        ("amex 3782 822463 10005", "credit_card", "3782 822463 10005"),
        ("IBAN DE89 3704 0044 0532 0130 00.", "iban", "DE89 3704 0044 0532 0130 00"),
        ("to GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
        ("SSN 219-09-9999", "national_id", "219-09-9999"),
        ("NI AB 12 34 56 C", "national_id", "AB 12 34 56 C"),
        ("host 203.0.113.45 down", "ip_address", "203.0.113.45"),
        ("v6 2001:db8::8a2e:370:7334 down", "ip_address", "2001:db8::8a2e:370:7334"),
        ("key AKIAIOSFODNN7EXAMPLE", "api_key", "AKIAIOSFODNN7EXAMPLE"),
        ("sk-ant-api03-Xy7Kq2Lm9Pz4Rt6Vw8Nb1Jc3Hd5Fg0Sa-AbCd", "api_key", None),
        ("OPENAI_API_KEY=sk-proj-4fGh8JkL2mNpQ6rStUvWx0yZ1aB3", "api_key", None),
        ("ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5", "api_key", None),
        ("xoxb-2048-4096-a1B2c3D4e5F6g7H8i9J0", "api_key", None),
        ("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "api_key", None),
        ('password = "Tr0ub4dor&3xq"', "secret", "Tr0ub4dor&3xq"),
        ("Bearer 8f7Hk2LmQ9xR4tZ1vB6nC3wE5yU0aS7dPq", "secret", None),
        ("-----BEGIN RSA PRIVATE KEY-----", "secret", None),
    ],
)
def test_each_type_is_found(text: str, kind: str, match: str | None) -> None:
    hits = found(text)
    assert [k for k, _ in hits] == [kind], hits
    if match is not None:
        assert hits[0][1] == match


@pytest.mark.parametrize(
    "text",
    [
        "Order #4821937 shipped on 2024-03-15 at 14:30:00.",
        "Upgrade to version 1.2.3.4, or v10.0.0.1; Python 3.11.7.",
        "request 123e4567-e89b-12d3-a456-426614174000",
        "commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ISBN 978-3-16-148410-0 and tracking 1Z999AA10123456784",
        "card 4111 1111 1111 1112 fails Luhn",
        "IBAN DE89 3704 0044 0532 0130 01 fails mod 97",
        "SSN 000-12-3456, 666-12-3456 and 912-34-5678 are never issued",
        "999.168.1.1 is no address; 10.0.0.0/8 is a network; mask 255.255.255.0",
        "std::vector, a::b and 12:30:45",
        "icon@2x.png and git@github.com:org/repo.git and lodash@4.17.21",
        'api_key = "<your-api-key>" and password: "********"',
        "TestCaseForTheUserAuthenticationModuleV2 and MAX_CONNECTIONS_PER_HOST_DEFAULT",
        "the sk-learn library; timestamp 1700000000000",
    ],
)
def test_look_alikes_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_validators() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("NL91ABNA0417164300") and not iban_valid("NL91ABNA0417164301")
    assert not iban_valid("XX91ABNA0417164300")  # no such country
    assert entropy("aaaa") == 0.0 and entropy("abcd") == 2.0


def test_a_span_is_reported_once_and_types_filter() -> None:
    text = "pay 4111111111111111 from jane@example.com or jane@example.org"
    assert count_types(find_pii(text)) == {"email": 2, "credit_card": 1}
    assert [f.type for f in find_pii(text, ["credit_card"])] == ["credit_card"]
    # A card number is not also a phone number.
    assert [f.type for f in find_pii("card 5555555555554444")] == ["credit_card"]


def test_findings_far_into_a_long_prompt_are_found() -> None:
    filler = "The committee reviewed the quarterly figures for every region. " * 300
    text = filler + "Reach me at jane@example.com or +1 415 555 2671." + filler
    assert count_types(find_pii(text)) == {"email": 1, "phone": 1}
