"""Personal data and secrets in text: patterns, each confirmed by a validator.

A pattern proposes a span; its validator keeps only what the thing really is: a card number
passes the Luhn check and starts like a card, an IBAN has its country's length and mod-97
checksum 1, a US social security number is outside the ranges never issued, an IP address
parses (and is not a version number), a key has a known issuer's prefix or looks random
enough (:func:`entropy`). So order numbers, dates, versions, UUIDs and hashes stay unflagged.

>>> [(f.type, f.start) for f in find_pii("mail bob@example.org, card 4111 1111 1111 1111")]
[('email', 5), ('credit_card', 27)]

Findings carry offsets so that :func:`crossroads.redact.mask_pii` can mask them; what
crossroads records of them is only their type and count (:func:`count_types`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice

PII_TYPES = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "national_id",
    "ip_address",
    "api_key",
    "secret",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One validated span of ``text[start:end]`` of a PII ``type``."""

    type: str
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum (card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Lengths of the IBANs of the SEPA countries and a few others (ISO 13616 registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29, "VA": 22,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` (no spaces, upper case) has its country's length and checksum 1."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def entropy(token: str) -> float:
    """Shannon entropy of ``token``'s characters, in bits per character."""
    counts = Counter(token)
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][\w.+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
)
_PHONE = re.compile(
    r"""(?<![\w+.-])(?:
        \+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}  # +44 20 7946 0958
      | \(\d{3}\)\s?\d{3}[\s.-]\d{4}                                        # (415) 555-2671
      | \d{3}[.-]\d{3}[.-]\d{4}                                             # 415-555-2671
    )(?![\w.-]*\d)""",
    re.VERBOSE,
)
_CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w.-]*\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_SSN = re.compile(r"(?<![\w.-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\w.-]*\d)")
_NINO = re.compile(r"\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_BEFORE = re.compile(r"(?:\bv|\bversion|\bver\.?|\brelease|\bbuild)\s*$", re.IGNORECASE)
_KEYS = re.compile(
    r"""(?<![\w-])(?:
        sk-ant-(?:api|admin)\d{2}-[\w-]{20,}                 # Anthropic
      | sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}      # OpenAI
      | (?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}          # Stripe
      | gh[pousr]_[A-Za-z0-9]{36,}                           # GitHub tokens
      | github_pat_[A-Za-z0-9_]{50,}
      | glpat-[A-Za-z0-9_-]{20,}                             # GitLab
      | (?:AKIA|ASIA)[0-9A-Z]{16}                            # AWS access key ids
      | xox[abposr]-[A-Za-z0-9-]{10,}                        # Slack
      | AIza[0-9A-Za-z_-]{35}                                # Google API keys
      | eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}  # JWTs
    )""",
    re.VERBOSE,
)
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
_TOKEN = re.compile(r"(?<![\w+/-])[A-Za-z0-9+/_-]{32,}={0,2}(?![\w+/=-])")
_HEX = re.compile(r"[0-9a-fA-F-]+")
_ASSIGNED = re.compile(
    r"""\b(?:api[_-]?key|secret(?:[_-]key)?|access[_-]token|auth[_-]token|password|passwd|pwd)
        ["']?\s*[:=]\s*["']([^"'\s]{8,})["']""",
    re.IGNORECASE | re.VERBOSE,
)
_PLACEHOLDER = re.compile(
    r"^(?:x+|\*+|\.+|<.*>|\{.*\}|\$\{?\w+\}?|your[\w-]*|changeme)$", re.IGNORECASE
)
# The random-token rule: at least this many bits per character (hex tops out at 4.0; 32
# random base62 characters score about 4.5, camel-case words about 4.0) and two digits.
ENTROPY_BITS = 4.2
_FILE_SUFFIXES = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "bmp",
        "ico",
        "pdf",
        "js",
        "ts",
        "css",
        "py",
        "rb",
        "go",
        "rs",
        "java",
        "md",
        "txt",
        "json",
        "yaml",
        "yml",
    ]
)


def _email(text: str, m: re.Match[str]) -> bool:
    raw = m.group()
    if raw.rsplit(".", 1)[1].lower() in _FILE_SUFFIXES:  # icon@2x.png, lib@1.2.js
        return False
    # git@github.com:org/repo is an SSH remote, not someone's address.
    return not (raw.startswith("git@") and text[m.end() : m.end() + 1] == ":")


def _phone(text: str, m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group())
    if not 10 <= len(digits) <= 15 or len(set(digits)) < 3:
        return False
    raw = m.group()
    # A plus sign, or the US formats; and not a date such as 2024-01-15-1200.
    return raw.startswith("+") or raw[0] == "(" or len(digits) == 10


def _card(text: str, m: re.Match[str]) -> bool:
    raw = m.group()
    digits = raw.replace(" ", "").replace("-", "")
    if len(set(digits)) < 2 or (" " in raw and "-" in raw):
        return False
    n, two, three, four = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    issuer = (
        (digits[0] == "4" and n in (13, 16, 19))  # Visa
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and n == 16)  # Mastercard
        or (two in (34, 37) and n == 15)  # American Express
        or ((four == 6011 or two == 65 or 644 <= three <= 649) and 16 <= n <= 19)  # Discover
        or (3528 <= four <= 3589 and 16 <= n <= 19)  # JCB
        or ((300 <= three <= 305 or two in (36, 38)) and 14 <= n <= 19)  # Diners Club
        or (two == 62 and 16 <= n <= 19)  # UnionPay
    )
    return issuer and luhn_valid(digits)


def _iban(text: str, m: re.Match[str]) -> bool:
    return iban_valid(m.group().replace(" ", ""))


def _ssn(text: str, m: re.Match[str]) -> bool:
    area, group, serial = m.group(1), m.group(2), m.group(3)
    sep = m.group()[3]
    if m.group()[6] != sep:
        return False
    area_n = int(area)
    # Never issued: area 000, 666, 900-999; group 00; serial 0000 (SSA rules).
    return area_n not in (0, 666) and area_n < 900 and group != "00" and serial != "0000"


def _nino(text: str, m: re.Match[str]) -> bool:
    # Prefixes HMRC never issues.
    return m.group(1) not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def _ipv4(text: str, m: re.Match[str]) -> bool:
    try:
        value = int(ipaddress.IPv4Address(m.group()))
    except ValueError:
        return False
    inverted = ~value & 0xFFFFFFFF
    if inverted & (inverted + 1) == 0:  # a netmask (255.255.255.0), 0.0.0.0 or broadcast
        return False
    if text[m.end() : m.end() + 1] == "/":  # 10.0.0.0/8 names a network, not a host
        return False
    return not _VERSION_BEFORE.search(text, max(0, m.start() - 12), m.start())


def _ipv6(text: str, m: re.Match[str]) -> bool:
    raw = m.group()
    if raw.count(":") < 2 or sum(ch.isalnum() for ch in raw) < 3:
        return False
    try:
        ipaddress.IPv6Address(raw)
    except ValueError:
        return False
    # Times (12:30:45) do not parse; a few letters-only words (cafe::babe) would: want a digit.
    return any(ch.isdigit() for ch in raw)


def _always(text: str, m: re.Match[str]) -> bool:
    return True


def _random_token(text: str, m: re.Match[str]) -> bool:
    token = m.group().rstrip("=")
    if _HEX.fullmatch(token):  # hashes, UUIDs and commit ids are not secrets
        return False
    if sum(c.isdigit() for c in token) < 2 or token.lower() == token or token.upper() == token:
        return False
    if "/" in token and token.count("/") > 2:  # a path, not a key
        return False
    return entropy(token) >= ENTROPY_BITS


def _assigned(text: str, m: re.Match[str]) -> bool:
    return not _PLACEHOLDER.match(m.group(1))


def _has(*needles: str) -> Callable[[str], bool]:
    """A gate: whether ``text`` holds one of ``needles`` (a C-speed scan, far cheaper than a
    regular expression tried at every position of a long prompt)."""
    return lambda text: any(n in text for n in needles)


def _long_run(text: str) -> bool:
    return any(len(word) >= 32 for word in text.split())


Validator = Callable[[str, re.Match[str]], bool]
Spans = list[tuple[int, int]]
_DIGITS = re.compile(r"\d+")
_AT = re.compile("@")
_HEX_COLON = re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f:]|::")
_KEY_WORD = re.compile(r"key|secret|token|passw|pwd", re.IGNORECASE)


def _near(trigger: re.Pattern[str], pad: int) -> Callable[[str], Spans]:
    """Where a detector looks: ``pad`` characters around each ``trigger`` match (merged, the
    end stretched to the next space), so a long prompt with few digits costs a few short
    scans instead of one over all of it."""

    def spans(text: str) -> Spans:
        out: Spans = []
        for m in trigger.finditer(text):
            start, end = max(0, m.start() - pad), m.end() + pad
            space = text.find(" ", end, end + 256)
            end = min(len(text), space if space >= 0 else end + 256)
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(end, out[-1][1]))
            else:
                out.append((start, end))
        return out

    return spans


def _whole(gate: Callable[[str], bool]) -> Callable[[str], Spans]:
    return lambda text: [(0, len(text))] if gate(text) else []


def _gated(gate: Callable[[str], bool], spans: Callable[[str], Spans]) -> Callable[[str], Spans]:
    return lambda text: spans(text) if gate(text) else []


def _has_word(*words: str) -> Callable[[str], bool]:
    def gate(text: str) -> bool:
        lowered = text.lower()
        return any(w in lowered for w in words)

    return gate


_KEY_PREFIXES = _has(
    "sk-", "k_live_", "k_test_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
    "glpat-", "AKIA", "ASIA", "xox", "AIza", "eyJ",
)  # fmt: skip
_NEAR_DIGITS = _gated(_has(*"0123456789"), _near(_DIGITS, 48))
# In order: a span claimed by an earlier detector is not reported again by a later one.
# Each reads only the parts of the text that can hold what it looks for.
DETECTORS: tuple[tuple[str, re.Pattern[str], Validator, int, Callable[[str], Spans]], ...] = (
    ("api_key", _KEYS, _always, 0, _whole(_KEY_PREFIXES)),
    ("secret", _PRIVATE_KEY, _always, 0, _whole(_has("-----BEGIN"))),
    (
        "secret",
        _ASSIGNED,
        _assigned,
        1,
        _gated(_has_word("key", "secret", "token", "passw", "pwd"), _near(_KEY_WORD, 16)),
    ),
    ("email", _EMAIL, _email, 0, _gated(_has("@"), _near(_AT, 255))),
    ("iban", _IBAN, _iban, 0, _NEAR_DIGITS),
    ("credit_card", _CARD, _card, 0, _NEAR_DIGITS),
    ("national_id", _SSN, _ssn, 0, _NEAR_DIGITS),
    ("national_id", _NINO, _nino, 0, _NEAR_DIGITS),
    ("ip_address", _IPV4, _ipv4, 0, _NEAR_DIGITS),
    ("ip_address", _IPV6, _ipv6, 0, _gated(_has(":"), _near(_HEX_COLON, 40))),
    ("phone", _PHONE, _phone, 0, _NEAR_DIGITS),
    ("secret", _TOKEN, _random_token, 0, _whole(_long_run)),
)


MAX_FINDINGS = 200  # per text: past this many the count is a floor


def find_pii(text: str, types: Iterable[str] | None = None) -> list[Finding]:
    """Every validated finding in ``text`` (of ``types`` only, if given), by position."""
    wanted = frozenset(types) if types is not None else None
    found: list[Finding] = []
    taken: list[tuple[int, int]] = []
    scopes: dict[int, Spans] = {}
    for kind, pattern, valid, group, where in DETECTORS:
        spans = scopes.get(id(where))
        if spans is None:
            spans = scopes[id(where)] = where(text)
        for lo, hi in spans:
            for m in islice(pattern.finditer(text, lo, hi), MAX_FINDINGS):
                start, end = m.span(group)
                if any(s < end and start < e for s, e in taken) or not valid(text, m):
                    continue
                taken.append((start, end))
                if wanted is None or kind in wanted:
                    found.append(Finding(kind, start, end))
    return sorted(found, key=lambda f: f.start)


def count_types(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings of each type, in :data:`PII_TYPES` order."""
    counts = Counter(f.type for f in findings)
    return {t: counts[t] for t in PII_TYPES if counts[t]}
