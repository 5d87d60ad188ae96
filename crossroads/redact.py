"""What traces and clients may see of text crossroads did not write: keys and tokens masked,
personal data masked, caller fields bounded.

Masking is best effort: it catches the common shapes (API keys, masked keys such as
``sk-...abcd``, ``Bearer`` tokens, long random tokens, e-mail addresses, numbers of seven or
more digits: phones, cards, accounts, IPs) and errs on the side of masking too much.

Text sent on to a model is masked precisely instead (:func:`mask_pii`): only what the
validated detectors of :mod:`crossroads.pii` find, each replaced by its type (``[EMAIL]``),
so the model still reads a sentence that makes sense.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from crossroads.types import Caller, RecordedCaller

FIELD_CHARS = 256  # a recorded caller field (user, a header value) keeps this many characters
MAX_HEADERS = 16  # headers recorded per trace at most
MASK = "[redacted]"

_SECRETS = re.compile(
    r"""
      (?<=\bBearer\ )\s*[^\s"',;)]+                      # the credential of an Authorization value
    | \b(?:sk|pk|rk)-[A-Za-z0-9_*.\-]{2,}                # sk-..., sk-ant-..., masked sk-...abcd
    | \bAKIA[0-9A-Z]{16}\b                               # an AWS access key id
    | (?<![A-Za-z0-9_+/])(?=[A-Za-z0-9_+/]*\d)(?=[A-Za-z0-9_+/]*[A-Za-z])[A-Za-z0-9_+/]{32,}=*
    """,
    re.VERBOSE | re.IGNORECASE,
)
_ASSIGNED = re.compile(
    r"""\b((?:api[_-]?key|secret|token|password|passwd)["']?\s*[:=]\s*["']?)[^\s"',;)]+""",
    re.IGNORECASE,
)
_PII = re.compile(
    r"""
      [\w.+-]+@[\w-]+(?:\.[\w-]+)+                       # an e-mail address
    | (?<!\w)\+?\d(?:[\s().-]?\d){6,}(?!\w)              # 7+ digits: phone, card, account, IP
    """,
    re.VERBOSE,
)


def scrub_secrets(text: str) -> str:
    """``text`` with anything that looks like a key or token replaced by ``[redacted]``."""
    text = _ASSIGNED.sub(lambda m: m.group(1) + MASK, text)
    return _SECRETS.sub(MASK, text)


def scrub(text: str) -> str:
    """``text`` with keys, tokens and personal data (e-mails, long numbers) masked."""
    return _PII.sub(MASK, scrub_secrets(text))


def mask_pii(text: str, types: Iterable[str] | None = None) -> tuple[str, int]:
    """``text`` with each finding of :func:`crossroads.pii.find_pii` (of ``types``, default
    all) replaced by its type in capitals, e.g. ``[CREDIT_CARD]``; and how many were masked.

    >>> mask_pii("mail jane@example.com")
    ('mail [EMAIL]', 1)
    """
    from crossroads.pii import find_pii

    findings = find_pii(text, types)
    if not findings:
        return text, 0
    out, last = [], 0
    for f in findings:
        out.append(text[last : f.start])
        out.append(f"[{f.type.upper()}]")
        last = f.end
    out.append(text[last:])
    return "".join(out), len(findings)


def bounded(text: str, limit: int = FIELD_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


def recorded_caller(caller: Caller | RecordedCaller) -> RecordedCaller:
    """What a trace keeps of the caller: each field bounded, at most ``MAX_HEADERS`` headers
    (a ``"..."`` entry counts the rest). Routing saw the caller in full."""
    if not caller.headers and (caller.user is None or len(caller.user) <= FIELD_CHARS):
        return RecordedCaller(caller.key_name, caller.user, {}, caller.team)  # the common case
    headers = {name: bounded(value) for name, value in list(caller.headers.items())[:MAX_HEADERS]}
    if len(caller.headers) > MAX_HEADERS:
        headers["..."] = f"{len(caller.headers) - MAX_HEADERS} more headers not recorded"
    return RecordedCaller(
        key_name=caller.key_name,
        user=None if caller.user is None else bounded(caller.user),
        headers=headers,
        team=caller.team,
    )
