"""Rules, selection methods, decisions and entrypoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from crossroads.config.base import _Strict, _tagged
from crossroads.config.comparisons import Comparison, is_comparison
from crossroads.config.online import EMASelection, LinUCBSelection, ThompsonSelection
from crossroads.config.plans import PlanConfig


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
    in the artifact. ``model_map`` maps the artifact's model keys to model names here.
    ``shadow``: another artifact scored on the same requests after the served choice, its
    would-be choice traced (``route.shadow``) and never served (``crossroads promote``)."""

    method: Literal["router"]
    router: str
    shadow: str | None = None
    objective: dict[Literal["lambda", "quality_target"], float] | None = None
    model_map: dict[str, str] = {}

    @field_validator("objective")
    @classmethod
    def _one_objective(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and len(value) != 1:
            raise ValueError("give exactly one of {lambda: float} or {quality_target: float}")
        return value


if TYPE_CHECKING:
    SelectionConfig = (
        FirstSelection
        | WeightedSelection
        | CheapestSelection
        | RouterSelection
        | LinUCBSelection
        | ThompsonSelection
        | EMASelection
    )
else:
    from crossroads.registry import SELECTORS

    SelectionConfig = _tagged(
        "method",
        None,
        FirstSelection,
        WeightedSelection,
        CheapestSelection,
        RouterSelection,
        LinUCBSelection,
        ThompsonSelection,
        EMASelection,
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
