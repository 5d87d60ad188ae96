"""Reading a config: YAML, environment expansion, errors with their paths."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from crossroads.config.schema import Config, _ReferenceErrors
from crossroads.exceptions import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    source: Mapping[str, str] = os.environ if env is None else env
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in source:
                return source[name]
            if default is not None:
                return default
            raise ConfigError(
                [("", f"environment variable {name} is not set (used as ${{{name}}})")]
            )

        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, source) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, source) for k, v in value.items()}
    return value


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``('decisions', 2, 'when', 'all', 0)`` → ``decisions[2].when.all[0]``; union tags dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith("<"):
            out += ("." if out else "") + part
    return out


def _problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("error"), _ReferenceErrors):
            problems += ctx["error"].problems
            continue
        loc = format_loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append((loc, msg))
    return list(dict.fromkeys(problems))


def parse_config(data: Any, source: str | None = None) -> Config:
    """Validate a parsed YAML/JSON tree into a :class:`Config`, raising :class:`ConfigError`."""
    if data is None:
        raise ConfigError([("", "the config is empty")], source)
    if not isinstance(data, dict):
        raise ConfigError(
            [("", f"the config must be a mapping, not {type(data).__name__}")], source
        )
    try:
        return Config.model_validate(expand_env(data))
    except ValidationError as exc:
        raise ConfigError(_problems_from(exc), source) from None
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [("", f"cannot read config file: {exc.strerror or exc}")], str(path)
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"invalid YAML: {where}{problem}")], str(path)) from None
    try:
        return parse_config(data, str(path))
    except ConfigError as exc:
        raise ConfigError(_with_lines(exc.problems, text), str(path)) from None


def _with_lines(problems: list[tuple[str, str]], text: str) -> list[tuple[str, str]]:
    """Each problem with the line of the file its path points at, ``... (line 14)``."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:  # pragma: no cover - the text parsed a moment ago
        return problems
    out = []
    for where, message in problems:
        line = _line_of(root, where) if where else None
        out.append((where, f"{message} (line {line})" if line else message))
    return out


def _line_of(node: Any, where: str) -> int | None:
    """The line of the deepest YAML node on the path ``decisions[2].when.all[0]``."""
    import yaml

    line = None
    for part in re.findall(r"\[\d+\]|[^.\[\]]+", where):
        if isinstance(node, yaml.SequenceNode) and part.startswith("["):
            index = int(part[1:-1])
            if index >= len(node.value):
                break
            node = node.value[index]
            line = node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
            if found is None:
                break
            key = next(k for k, v in node.value if v is found)
            node, line = found, key.start_mark.line + 1
        else:
            break
    return line
