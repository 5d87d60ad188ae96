"""Comparisons in rules: ``complexity:hard > 0.7``, ``language:lang in [de, fr]``.

A comparison is written as one string or as ``{signal, field, op, value}``; both give a
:class:`Comparison`. Whether it fits the signal it reads (operator, value type, range,
labels) depends on what that signal's kind declares (:class:`~crossroads.types.ValueSpec`):
:func:`value_spec_of` and :func:`typed_value` check it, once at config load and again when
the rule is compiled.
"""

from __future__ import annotations

import re
from collections.abc import Set
from typing import Any, Literal

from pydantic import model_validator

from crossroads.config.base import _Strict
from crossroads.types import ValueSpec

Operator = Literal[">", ">=", "<", "<=", "==", "!=", "in", "not in"]
Scalar = bool | int | float | str

_COMPARISON = re.compile(
    r"^\s*(?P<signal>[^\s<>=!]+?)\s*(?P<op>>=|<=|==|!=|>|<|\snot\s+in(?=[\s\[])|\sin(?=[\s\[]))\s*(?P<value>.*?)\s*$"
)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _scalar(text: str) -> Scalar:
    """A value written in a comparison: a number, true/false, or a label (quotes optional)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _NUMBER.match(text):
        number = float(text)
        return int(number) if text.lstrip("+-").isdigit() else number
    return {"true": True, "false": False}.get(text, text)


def parse_comparison(text: str) -> dict[str, Any]:
    """``"complexity:hard > 0.7"`` → ``{signal, op, value}``; a ValueError says what is wrong.

    >>> parse_comparison("language:lang in [de, fr]")
    {'signal': 'language:lang', 'op': 'in', 'value': ['de', 'fr']}
    """
    m = _COMPARISON.match(text)
    if m is None or not m.group("value"):
        raise ValueError(
            f"cannot read the comparison {text!r}: write 'kind:name OP value' or "
            "'kind:name.field OP value', OP one of > >= < <= == != in, not in "
            "(e.g. 'complexity:hard > 0.7', 'language:lang in [de, fr]')"
        )
    op = " ".join(m.group("op").split())
    raw = m.group("value")
    value: Any
    if raw.startswith("[") and raw.endswith("]"):
        value = [_scalar(v.strip()) for v in raw[1:-1].split(",") if v.strip()]
    else:
        value = _scalar(raw)
    return {"signal": m.group("signal"), "op": op, "value": value}


def is_comparison(text: str) -> bool:
    """Whether a string rule is a comparison rather than a signal reference."""
    return any(c in text for c in "<>=! ")


class Comparison(_Strict):
    """True when the signal's value (or one ``field`` of it) compares true to ``value``:
    ``{signal: complexity:hard, op: ">", value: 0.7}``, or as one string
    ``"complexity:hard > 0.7"``; ``signal`` may name the field too (``pii:found.count``).
    A signal not computed, failed or without a value makes every comparison false."""

    signal: str
    field: str | None = None
    op: Operator
    value: Scalar | list[Scalar]

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return parse_comparison(data) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _value_fits_op(self) -> Comparison:
        many = self.op in ("in", "not in")
        if many and not isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs a list of values, e.g. [de, fr]")
        if many and not self.value:
            raise ValueError(f"'{self.op}' needs at least one value")
        if not many and isinstance(self.value, list):
            raise ValueError(f"'{self.op}' compares with one value; use 'in' for a list")
        return self

    @property
    def text(self) -> str:
        """The comparison as written in the compact form."""
        signal = f"{self.signal}.{self.field}" if self.field else self.signal
        value = self.value
        shown = (
            "[" + ", ".join(map(_shown, value)) + "]" if isinstance(value, list) else _shown(value)
        )
        return f"{signal} {self.op} {shown}"


def _shown(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def resolve_reference(signal: str, field: str | None, declared: Set[str]) -> tuple[str, str | None]:
    """The declared signal a comparison reads and the field of its value:
    ``pii:found.count`` → ``("pii:found", "count")``, unless ``pii:found.count`` is itself
    the name of a declared signal."""
    if field is not None or signal in declared or "." not in signal:
        return signal, field
    head, _, tail = signal.rpartition(".")
    return (head, tail) if head in declared else (signal, None)


def value_spec_of(spec: ValueSpec | None, field: str | None, name: str) -> ValueSpec:
    """The spec of what a comparison reads: the signal's value, or one field of it; a
    ValueError says why it cannot be compared."""
    if spec is None:
        raise ValueError(
            f"{name} has no value that rules can compare (its kind declares none): "
            f"use {name!r} itself as the rule"
        )
    if field is None:
        if spec.type == "record":
            known = ", ".join(f for f, _ in spec.fields)
            raise ValueError(
                f"the value of {name} has fields ({known}): compare one, "
                f"e.g. '{name}.{spec.fields[0][0]} >= 1'"
            )
        return spec
    fields = dict(spec.fields)
    if field not in fields:
        known = ", ".join(fields) or "none"
        raise ValueError(f"unknown field {field!r} of {name}; its fields: {known}")
    return fields[field]


def typed_value(spec: ValueSpec, op: str, value: Any, name: str) -> Any:
    """``value`` as the comparison tests it: a float for numbers and counts, a bool for flags,
    a label or a frozenset of labels; a ValueError says what does not fit ``spec``."""
    if spec.type in ("number", "count"):
        what = "a score" if spec.type == "number" else "a count"
        if op in ("in", "not in"):
            raise ValueError(f"'{op}' tests labels and {name} is {what}: use > >= < <= == !=")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} is {what}: compare it with a number, not {value!r}")
        if not spec.low <= value <= spec.high:
            raise ValueError(
                f"the threshold {value:g} is outside the range of {name}, {_range(spec)}"
            )
        if spec.type == "count" and op in ("==", "!=") and not float(value).is_integer():
            raise ValueError(f"{name} is a whole number: it never equals {value:g}")
        return float(value)
    if spec.type == "flag":
        if op not in ("==", "!=") or not isinstance(value, bool):
            raise ValueError(
                f"{name} is true or false: write '{name} == true' (or use {name!r} itself)"
            )
        return value
    if op not in ("==", "!=", "in", "not in"):
        raise ValueError(f"'{op}' compares numbers and {name} is a label: use == != in, not in")
    labels = [_shown(v) for v in (value if isinstance(value, list) else [value])]
    if spec.labels is not None:
        unknown = [x for x in labels if x not in spec.labels]
        if unknown:
            import difflib

            hint = difflib.get_close_matches(unknown[0], sorted(spec.labels), n=1)
            raise ValueError(
                f"{name} has no label {', '.join(map(repr, unknown))}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; its labels: {', '.join(sorted(spec.labels))}"
            )
    return frozenset(labels) if op in ("in", "not in") else labels[0]


def _range(spec: ValueSpec) -> str:
    low = "-∞" if spec.low == float("-inf") else f"{spec.low:g}"
    high = "∞)" if spec.high == float("inf") else f"{spec.high:g}]"
    return f"[{low}, {high}"
