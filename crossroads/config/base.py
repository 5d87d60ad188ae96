"""Shared pieces of the config schema: strict models and tagged unions."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Tag,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _tagged(key: str, default: str | None, *members: type[BaseModel]) -> Any:
    """A union chosen by ``key`` whose tags, ``<value>``, are dropped from error paths."""
    by_tag: dict[str, type[BaseModel]] = {}
    for member in members:
        for tag in member.model_fields[key].annotation.__args__:  # type: ignore[union-attr]
            by_tag[tag] = member
    expected = ", ".join(repr(t) for t in by_tag)

    def pick(value: Any) -> str | None:
        tag = value.get(key, default) if isinstance(value, dict) else getattr(value, key, None)
        return f"<{tag}>" if isinstance(tag, str) else None

    def known(value: Any) -> Any:
        tag = value.get(key) if isinstance(value, dict) else None
        if tag is not None and tag not in by_tag:
            raise ValueError(f"unknown {key} {tag!r}; expected one of {expected}")
        return value

    choices = tuple(Annotated[m, Tag(f"<{t}>")] for t, m in by_tag.items())
    return Annotated[
        Union[choices],  # noqa: UP007
        Discriminator(
            pick,
            custom_error_type="missing_kind",
            custom_error_message=f"'{key}' is required: one of {expected}",
        ),
        BeforeValidator(known),
    ]
