"""Normalised final answers, so that independent answers can be compared.

``final_answer(text, kind)`` reduces an answer to what a grader would compare: the letter of
a multiple-choice answer, the final number of a calculation, a short answer without case,
articles and punctuation. ``auto`` looks for an explicit final answer ("#### 42",
``\\boxed{B}``, "the answer is (C)"), then a short answer; a long free-text answer has no
final answer (``None``): compare those by embedding similarity instead.

>>> final_answer("so 3 + 4 = 7.\\n#### 7", "auto")
'number:7'
>>> final_answer("The answer is (b).", "auto")
'choice:B'
"""

from __future__ import annotations

import re

import orjson

from crossroads.types import ToolCall

_BOXED = re.compile(r"\\boxed\{+([^{}]*)\}+")
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*[:\s]*\(?\**\s*([^\n.;]+)", re.IGNORECASE
)
_CHOICE = re.compile(r"^\(?([A-J])[.):]\s")
_LONE_CHOICE = re.compile(r"(?:^|\n)\s*\(?([A-J])\)?\s*[.)]?\s*$")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")
SHORT_WORDS = 8


def final_answer(text: str, kind: str = "auto") -> str | None:
    """The normalised final answer of ``text`` as ``kind:value`` (``kind`` one of ``auto``,
    ``choice``, ``number``, ``short``, ``text``), or ``None`` if it has none of that kind."""
    text = text.strip()
    if not text or kind == "text":
        return None
    explicit = _explicit(text)
    candidates = [explicit] if explicit is not None else []
    if kind == "choice":
        for found in [*candidates, text]:
            letter = _choice(found) or _lone_choice(found)
            if letter:
                return f"choice:{letter}"
        return None
    if kind == "number":
        numbers = _NUMBER.findall(explicit if explicit is not None else text)
        return f"number:{_number(numbers[-1])}" if numbers else None
    if kind == "short":
        return _short(explicit if explicit is not None else text)
    # auto
    if explicit is not None:
        letter = _choice(explicit)
        if letter:
            return f"choice:{letter}"
        numbers = _NUMBER.findall(explicit)
        if numbers and len(explicit.split()) <= 4:
            return f"number:{_number(numbers[-1])}"
        return _short(explicit)
    letter = _lone_choice(text)
    if letter:
        return f"choice:{letter}"
    if _NUMBER.fullmatch(text.rstrip(".")):
        return f"number:{_number(text.rstrip('.'))}"
    return _short(text)


def answer_key(text: str, tool_calls: list[ToolCall], json_mode: bool, kind: str) -> str | None:
    """What two answers must share to agree: their tool calls (name and arguments), their
    JSON (parsed, keys sorted) in JSON mode, else their final answer."""
    if tool_calls:
        return "tools:" + "|".join(f"{c.name}({_canonical_json(c.arguments)})" for c in tool_calls)
    if json_mode:
        return "json:" + _canonical_json(text)
    return final_answer(text, kind)


def _canonical_json(text: str) -> str:
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return text.strip()


def _explicit(text: str) -> str | None:
    for pattern in (_BOXED, _HASHES):
        found: list[str] = pattern.findall(text)
        if found:
            return found[-1].strip()
    found = _ANSWER_IS.findall(text)
    if found:
        return found[-1].strip().strip("*").strip()
    return None


def _choice(text: str) -> str | None:
    bare = text.strip().strip("*()[]. ")
    if len(bare) == 1 and bare.upper() in "ABCDEFGHIJ":
        return bare.upper()
    match = _CHOICE.match(text.strip().strip("*"))
    return match.group(1) if match else None


def _lone_choice(text: str) -> str | None:
    match = _LONE_CHOICE.search(text[-20:])
    return match.group(1) if match else None


def _number(raw: str) -> str:
    raw = raw.replace(",", "")
    if "/" in raw:
        num, _, den = raw.partition("/")
        try:
            return _number(repr(float(num) / float(den)))
        except (ValueError, ZeroDivisionError):
            return raw
    try:
        value = float(raw)
    except ValueError:
        return raw
    return str(int(value)) if value == int(value) else f"{value:.6g}"


def _short(text: str) -> str | None:
    words = _ARTICLES.sub(" ", _PUNCT.sub(" ", text.lower())).split()
    if not words or len(words) > SHORT_WORDS:
        return None
    return "short:" + " ".join(words)
