"""Shared pieces of the config schema: strict models and tagged unions."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Tag,
    WrapValidator,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _tagged(key: str, default: str | None, *members: type[BaseModel], plugins: Any = None) -> Any:
    """A union chosen by ``key`` whose tags, ``<value>``, are dropped from error paths.
    With ``plugins`` (a :class:`~crossroads.registry.Registry`) the union is open: a tag no
    member has is looked up there, and validated by the plugin's ``config_class``."""
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

    def plugin(value: Any, handler: Any) -> Any:
        tag = value.get(key) if isinstance(value, dict) else None
        if isinstance(tag, str) and tag not in by_tag:
            from crossroads.registry import plugin_config

            config_class = plugin_config(plugins, tag)
            if config_class is not None:
                return config_class.model_validate(value)
        return handler(value)

    choices = tuple(Annotated[m, Tag(f"<{t}>")] for t, m in by_tag.items())
    if plugins is not None:
        return Annotated[
            Union[choices],  # noqa: UP007
            Discriminator(
                pick,
                custom_error_type="missing_kind",
                custom_error_message=f"'{key}' is required: one of {expected}",
            ),
            BeforeValidator(known),
            WrapValidator(plugin),
        ]
    return Annotated[
        Union[choices],  # noqa: UP007
        Discriminator(
            pick,
            custom_error_type="missing_kind",
            custom_error_message=f"'{key}' is required: one of {expected}",
        ),
        BeforeValidator(known),
    ]
