"""Rules, selection methods, decisions and entrypoints."""

from __future__ import annotations

import re
from collections.abc import Set
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from crossroads.config.base import _Strict, _tagged
from crossroads.config.plans import PlanConfig
from crossroads.types import ValueSpec


class AllRule(_Strict):
    """True when every child rule is true."""

    all: list[Rule] = Field(min_length=1)


class AnyRule(_Strict):
    """True when at least one child rule is true."""

    any: list[Rule] = Field(min_length=1)


class NotRule(_Strict):
    """True when the child rule is false."""

    not_: Rule = Field(alias="not")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


def _rule_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "<compare>" if is_comparison(value) else "<signal>"
    if isinstance(value, dict):
        if "signal" in value:
            return "<compare>"
        if len(value) == 1:
            key = next(iter(value))
            return {"all": "<all>", "any": "<any>", "not": "<not>"}.get(key)
        return None
    return _TAGS.get(type(value))


Rule = Annotated[
    Annotated[str, Tag("<signal>")]
    | Annotated[Comparison, Tag("<compare>")]
    | Annotated[AllRule, Tag("<all>")]
    | Annotated[AnyRule, Tag("<any>")]
    | Annotated[NotRule, Tag("<not>")],
    Discriminator(
        _rule_tag,
        custom_error_type="invalid_rule",
        custom_error_message=(
            "a rule is a signal reference 'kind:name', a comparison ('complexity:hard > 0.7', "
            "'language:lang in [de, fr]', or {signal, field, op, value}), or one of "
            "{all: [...]}, {any: [...]}, {not: rule}"
        ),
    ),
]
_TAGS: dict[type, str] = {
    Comparison: "<compare>",
    AllRule: "<all>",
    AnyRule: "<any>",
    NotRule: "<not>",
}
AllRule.model_rebuild()
AnyRule.model_rebuild()
NotRule.model_rebuild()


class FirstSelection(_Strict):
    """The first eligible candidate, in the order listed (``static`` is an alias)."""

    method: Literal["first", "static"]


class WeightedSelection(_Strict):
    """A random eligible candidate, proportional to ``weights`` (default 1 each)."""

    method: Literal["weighted"]
    weights: dict[str, float] = {}
    seed: int | None = None


class CheapestSelection(_Strict):
    """The eligible candidate with the lowest estimated cost."""

    method: Literal["cheapest"]


class RouterSelection(_Strict):
    """A learned router artifact (``crossroads fit``) picks the candidate: maximise predicted
    quality − λ·cost (``objective: {lambda: ...}``), or the cheapest candidate predicted to
    reach a quality (``objective: {quality_target: ...}``); default: the calibrated λ stored
    in the artifact. ``model_map`` maps the artifact's model keys to model names here."""

    method: Literal["router"]
    router: str
    objective: dict[Literal["lambda", "quality_target"], float] | None = None
    model_map: dict[str, str] = {}

    @field_validator("objective")
    @classmethod
    def _one_objective(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and len(value) != 1:
            raise ValueError("give exactly one of {lambda: float} or {quality_target: float}")
        return value


if TYPE_CHECKING:
    SelectionConfig = FirstSelection | WeightedSelection | CheapestSelection | RouterSelection
else:
    from crossroads.registry import SELECTORS

    SelectionConfig = _tagged(
        "method",
        None,
        FirstSelection,
        WeightedSelection,
        CheapestSelection,
        RouterSelection,
        plugins=SELECTORS,
    )


OnBudget = Literal["refuse", "downgrade"]
"""When the chosen model's estimated cost does not fit the caller's budget: refuse the
request (429 ``budget_exceeded``), or take the most expensive cheaper eligible candidate
that fits."""


def _selection_shorthand(value: Any) -> Any:
    return {"method": value} if isinstance(value, str) else value


class Decision(_Strict):
    """A rule with a priority, candidate models and how to choose among them."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    when: Rule
    priority: int = 0
    models: list[str] = Field(min_length=1)
    selection: SelectionConfig = FirstSelection(method="first")
    plan: PlanConfig | None = (
        None  # how to call: a cascade, a fan-out, a cache (one call if absent)
    )
    on_budget: OnBudget = "refuse"
    description: str | None = None

    @field_validator("selection", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _selection_shorthand(value)


class DefaultDecision(_Strict):
    """What happens when no decision matches."""

    name: str = "default"
    models: list[str] = Field(min_length=1)
    selection: SelectionConfig = FirstSelection(method="first")
    plan: PlanConfig | None = None
    on_budget: OnBudget = "refuse"

    @field_validator("selection", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _selection_shorthand(value)


class Entrypoint(_Strict):
    """A routed model name clients can ask for (``auto`` by default), over a subset of
    decisions (all by default) with its own default."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:/@-]+$")
    decisions: list[str] | None = None
    default: DefaultDecision | None = None
