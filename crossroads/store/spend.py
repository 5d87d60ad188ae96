"""Spend summaries: requests, tokens and cost grouped by key, team, model and day (UTC)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from crossroads.exceptions import InvalidRequestError
from crossroads.types import Trace

DIMENSIONS = ("key", "team", "model", "day")
TOTALS = ("requests", "prompt_tokens", "completion_tokens", "cost")


def check_dimensions(by: Sequence[str]) -> list[str]:
    """``by`` in a canonical order, each a known dimension; else a clear error."""
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown or not by:
        raise InvalidRequestError(
            f"cannot group spend by {', '.join(unknown) or 'nothing'}: use one or more of "
            f"{', '.join(DIMENSIONS)}",
            param="by",
        )
    return [d for d in DIMENSIONS if d in by]


def spend_of_traces(
    traces: Iterable[Trace], by: Sequence[str], since: float | None, until: float | None
) -> list[dict[str, Any]]:
    """The spend summary of in-memory traces (what the SQL stores compute in the database)."""
    dims = check_dimensions(by)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for t in traces:
        if (since is not None and t.created_at < since) or (
            until is not None and t.created_at >= until
        ):
            continue
        caller = t.caller
        values = {
            "key": caller.key_name if caller else None,
            "team": caller.team if caller else None,
            "model": t.model or (t.route.model if t.route else None),
            "day": time.strftime("%Y-%m-%d", time.gmtime(t.created_at)),
        }
        group = tuple(values[d] for d in dims)
        row = groups.setdefault(group, {**{d: values[d] for d in dims}, **dict.fromkeys(TOTALS, 0)})
        row["requests"] += 1
        if t.usage is not None:
            row["prompt_tokens"] += t.usage.prompt_tokens or 0
            row["completion_tokens"] += t.usage.completion_tokens or 0
        row["cost"] += t.cost or 0
    return sorted(groups.values(), key=lambda r: tuple((r[d] is None, r[d] or "") for d in dims))


def spend_sql(dims: list[str], expressions: dict[str, str], source: str) -> str:
    """The ``GROUP BY`` query of a SQL store: ``expressions`` maps each dimension and total to
    its SQL over ``source`` (a subquery taking ``since`` and ``until`` parameters)."""
    columns = [f"{expressions[d]} AS {d}" for d in dims]
    columns += [
        "COUNT(*) AS requests",
        f"COALESCE(SUM({expressions['prompt_tokens']}), 0) AS prompt_tokens",
        f"COALESCE(SUM({expressions['completion_tokens']}), 0) AS completion_tokens",
        f"COALESCE(SUM({expressions['cost']}), 0) AS cost",
    ]
    positions = range(1, len(dims) + 1)
    return (
        f"SELECT {', '.join(columns)} FROM {source} GROUP BY {', '.join(map(str, positions))} "
        f"ORDER BY {', '.join(f'{i} NULLS LAST' for i in positions)}"
    )


def spend_range(since: float | None, until: float | None) -> tuple[float, float]:
    """The ``(since, until)`` parameters of the SQL, open ends made finite."""
    return (-1e18 if since is None else since, 1e18 if until is None else until)


def parse_day(text: str, what: str) -> float:
    """Unix seconds of ``text``: a UTC day ``YYYY-MM-DD`` (its start) or a number."""
    import calendar

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%d")))
    except ValueError:
        raise InvalidRequestError(
            f"{what} must be a day (YYYY-MM-DD, UTC) or unix seconds, not {text!r}", param=what
        ) from None
