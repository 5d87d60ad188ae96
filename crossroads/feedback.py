"""Feedback on answered requests: what a reward may be sent as, and when two are the same.

A body is ``{trace_id, reward, source?, comment?, metadata?}``. ``reward`` is a number in
[0, 1], ``"up"`` / ``"down"`` (1 and 0), or a label named under ``feedback.labels``.
One reward is kept per (trace, source): sending the same body again is answered as the
first time (idempotent); sending another reward, comment or metadata for a (trace, source)
that has one is a 409 conflict. A new source (``"grader"``, ``"user"``) adds a reward.

>>> parse_feedback({"trace_id": "t1", "reward": "up"}, {}).reward
1.0
"""

from __future__ import annotations

import math
from typing import Any

from crossroads.exceptions import InvalidRequestError, UnprocessableError
from crossroads.types import Feedback

THUMBS = {"up": 1.0, "down": 0.0}
FIELDS = {"trace_id", "reward", "source", "comment", "metadata"}
MAX_ID_CHARS = 128
MAX_SOURCE_CHARS = 64
MAX_COMMENT_CHARS = 4000


def parse_feedback(
    body: Any, labels: dict[str, float], key_name: str | None = None, now: float = 0.0
) -> Feedback:
    """The feedback a body sends: 400 for a wrong shape or type, 422 for a value that cannot
    be used (a reward outside [0, 1], a label ``labels`` does not name)."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The feedback must be a JSON object.")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"Unknown field {unknown[0]!r}; known: {', '.join(sorted(FIELDS))}.", param=unknown[0]
        )
    trace_id = _text(body, "trace_id", MAX_ID_CHARS, required=True)
    assert trace_id is not None  # required
    source = _text(body, "source", MAX_SOURCE_CHARS) or "client"
    comment = _text(body, "comment", MAX_COMMENT_CHARS)
    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise InvalidRequestError("metadata must be an object", param="metadata")
    reward, label = _reward(body.get("reward", None), "reward" in body, labels)
    return Feedback(trace_id, reward, source, label, comment, metadata, now, key_name)


def _reward(value: Any, given: bool, labels: dict[str, float]) -> tuple[float, str | None]:
    if not given or value is None:
        raise InvalidRequestError(
            "reward is required: a number in [0, 1], 'up', 'down' or a configured label",
            param="reward",
        )
    if isinstance(value, str):
        reward = THUMBS.get(value, labels.get(value))
        if reward is None:
            known = ", ".join(sorted({*THUMBS, *labels}))
            raise UnprocessableError(
                f"Unknown reward label {value!r}; known: {known} (add labels under "
                "feedback.labels), or send a number in [0, 1].",
                param="reward",
            )
        return float(reward), value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(
            "reward must be a number in [0, 1] or a label string", param="reward"
        )
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UnprocessableError(f"reward {value} is outside [0, 1].", param="reward")
    return float(value), None


def _text(body: dict[str, Any], name: str, limit: int, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequestError(f"{name} is required", param=name)
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidRequestError(f"{name} must be a non-empty string", param=name)
    if len(value) > limit:
        raise UnprocessableError(f"{name} is longer than {limit} characters.", param=name)
    return value


def same_feedback(a: Feedback, b: Feedback) -> bool:
    """Whether ``b`` repeats ``a`` (the same trace, source, reward, comment and metadata:
    when it was sent and by which key do not count)."""
    return (
        a.trace_id == b.trace_id
        and a.source == b.source
        and a.reward == b.reward
        and a.label == b.label
        and a.comment == b.comment
        and a.metadata == b.metadata
    )


def conflict(stored: Feedback) -> Exception:
    """The 409 for a repeat of (trace, source) that disagrees with ``stored``."""
    from crossroads.exceptions import ConflictError

    return ConflictError(
        f"Trace {stored.trace_id} already has feedback from source {stored.source!r} "
        f"(reward {stored.reward:g}); feedback is kept once per (trace_id, source): send the "
        "same body to repeat it, or another source to add a reward.",
        param="reward",
    )


def from_row(data: Any) -> Feedback:
    """A stored feedback row (a dict, or its JSON) as :class:`Feedback`."""
    import orjson

    fields = orjson.loads(data) if isinstance(data, bytes | str) else dict(data)
    return Feedback(**fields)
