"""Simple checks of an answer: cheap reasons to reject it without a model.

``failed_check(answer, request, checks)`` names the first check that fails, or ``None``:
``empty`` (no text, no tool call), ``refusal`` (it opens by declining), ``truncated`` (cut
at ``max_tokens``), ``json`` (JSON mode: it does not parse, or violates the request's
schema; a tool call's arguments that do not parse or violate the tool's schema), ``code``
(a fenced Python block that does not parse), and, only when listed, ``arithmetic`` (a
written calculation such as ``16 - 3 = 12`` is wrong). Schemas are checked with ``jsonschema`` when
it is installed, else only parsing and the top-level type are.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson

from crossroads.plans.arithmetic import calculations
from crossroads.types import Request, ToolCall

_REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry,? but|sorry,? (?:but )?i (?:can(?:no|')t|am unable)|i (?:can(?:no|')t|"
    r"am (?:not able|unable)|won'?t be able|must decline|do not feel comfortable)"
    r"(?: to)? (?:help|assist|provide|answer|comply|do that|fulfil|create|write|share|engage)"
    r"|as an ai(?: language model)?,? i (?:can(?:no|')t|am unable|don'?t))",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON = {"python", "py", "python3"}


def failed_check(
    text: str,
    tool_calls: list[ToolCall],
    finish_reason: str | None,
    complete: bool,
    request: Request,
    checks: Sequence[str],
) -> str | None:
    """The first of ``checks`` the answer fails, with a few words of why; ``None`` if all pass.
    ``complete``: the whole answer was read (a streamed prefix skips the checks that need it)."""
    for check in checks:
        why = _CHECKS[check](text, tool_calls, finish_reason, complete, request)
        if why is not None:
            return f"{check}: {why}"
    return None


def _empty(
    text: str, calls: list[ToolCall], finish: str | None, complete: bool, r: Request
) -> str | None:
    return "no text and no tool call" if not text.strip() and not calls else None


def _refusal(
    text: str, calls: list[ToolCall], finish: str | None, complete: bool, r: Request
) -> str | None:
    if finish == "content_filter":
        return "the upstream's content filter stopped it"
    return "it declines to answer" if _REFUSAL.match(text[:200]) else None


def _truncated(
    text: str, calls: list[ToolCall], finish: str | None, complete: bool, r: Request
) -> str | None:
    return "cut at max_tokens" if finish == "length" else None


def _json(
    text: str, calls: list[ToolCall], finish: str | None, complete: bool, r: Request
) -> str | None:
    tools = {t.name: t.parameters for t in r.tools}
    for c in calls:
        if r.tools and c.name not in tools:
            return f"tool call of unknown tool {c.name!r}"
        problem = _against(c.arguments, tools.get(c.name), f"arguments of {c.name!r}")
        if problem:
            return problem
    fmt = r.response_format
    if not complete or calls or fmt is None or fmt.type == "text":
        return None
    schema = fmt.schema if fmt.type == "json_schema" else {"type": "object"}
    return _against(_unfenced(text), schema or {"type": "object"}, "the answer")


def _code(
    text: str, calls: list[ToolCall], finish: str | None, complete: bool, r: Request
) -> str | None:
    if not complete:
        return None
    for lang, body in _FENCE.findall(text):
        if lang.lower() in _PYTHON:
            try:
                ast.parse(body)
            except (SyntaxError, ValueError) as exc:
                return f"a Python block does not parse ({exc.msg if isinstance(exc, SyntaxError) else exc})"
    return None


def _arithmetic(
    text: str, calls: list[ToolCall], finish: str | None, complete: bool, r: Request
) -> str | None:
    claims, wrong = calculations(text)
    return f"{wrong} of its {claims} written calculations are wrong" if wrong else None


_CHECKS = {
    "empty": _empty,
    "refusal": _refusal,
    "truncated": _truncated,
    "json": _json,
    "code": _code,
    "arithmetic": _arithmetic,
}


def _unfenced(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        match = _FENCE.match(stripped)
        if match:
            return match.group(2)
    return stripped


def _against(text: str, schema: dict[str, Any] | None, what: str) -> str | None:
    try:
        value = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        return f"{what} is not valid JSON"
    if not schema:
        return None
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    if validator is None:
        wanted = schema.get("type")
        if wanted == "object" and not isinstance(value, dict):
            return f"{what} is not a JSON object"
        return None
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "top level"
    return f"{what} violates the schema at {where}: {error.message[:120]}"


@lru_cache(maxsize=256)
def _validator(schema: bytes) -> Any:
    """A compiled validator for a schema (cached: the same tools come again and again)."""
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - jsonschema ships with the plans extra
        return None
    loaded = orjson.loads(schema)
    cls = jsonschema.validators.validator_for(loaded)
    try:
        cls.check_schema(loaded)
    except jsonschema.SchemaError:
        return None  # the client's schema is broken: do not reject answers for it
    return cls(loaded)
