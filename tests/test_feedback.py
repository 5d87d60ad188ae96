"""What a feedback body may say: rewards as numbers, thumbs or labels; 400 vs 422."""

from __future__ import annotations

from typing import Any

import pytest

from crossroads.exceptions import InvalidRequestError, UnprocessableError
from crossroads.feedback import parse_feedback, same_feedback

LABELS = {"solved": 1.0, "partial": 0.5}


@pytest.mark.parametrize(
    ("reward", "value", "label"),
    [
        (0.25, 0.25, None),
        (1, 1.0, None),
        ("up", 1.0, "up"),
        ("down", 0.0, "down"),
        ("partial", 0.5, "partial"),
    ],
)
def test_rewards_are_numbers_thumbs_or_labels(reward: Any, value: float, label: Any) -> None:
    got = parse_feedback({"trace_id": "t1", "reward": reward}, LABELS, key_name="k", now=5.0)
    assert (got.reward, got.label, got.source, got.key_name, got.created_at) == (
        value,
        label,
        "client",
        "k",
        5.0,
    )


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [
        ([], InvalidRequestError, None),
        ({"reward": 1}, InvalidRequestError, "trace_id"),
        ({"trace_id": "", "reward": 1}, InvalidRequestError, "trace_id"),
        ({"trace_id": "t"}, InvalidRequestError, "reward"),
        ({"trace_id": "t", "reward": True}, InvalidRequestError, "reward"),
        ({"trace_id": "t", "reward": [1]}, InvalidRequestError, "reward"),
        ({"trace_id": "t", "reward": 1, "extra": 1}, InvalidRequestError, "extra"),
        ({"trace_id": "t", "reward": 1, "metadata": "x"}, InvalidRequestError, "metadata"),
        ({"trace_id": "t", "reward": 1.5}, UnprocessableError, "reward"),
        ({"trace_id": "t", "reward": -0.1}, UnprocessableError, "reward"),
        ({"trace_id": "t", "reward": float("nan")}, UnprocessableError, "reward"),
        ({"trace_id": "t", "reward": "meh"}, UnprocessableError, "reward"),
        ({"trace_id": "t", "reward": 1, "comment": "x" * 5000}, UnprocessableError, "comment"),
    ],
)
def test_a_wrong_shape_is_400_and_an_unusable_value_422(
    body: Any, error: type[Exception], param: str | None
) -> None:
    with pytest.raises(error) as caught:
        parse_feedback(body, LABELS)
    assert getattr(caught.value, "param", None) == param
    assert caught.value.status == (422 if error is UnprocessableError else 400)  # type: ignore[attr-defined]


def test_a_repeat_ignores_when_and_by_whom() -> None:
    a = parse_feedback({"trace_id": "t", "reward": "up", "comment": "ok"}, {}, "k1", 1.0)
    b = parse_feedback({"trace_id": "t", "reward": "up", "comment": "ok"}, {}, "k2", 2.0)
    c = parse_feedback({"trace_id": "t", "reward": 1.0, "comment": "ok"}, {}, "k1", 1.0)
    assert same_feedback(a, b)
    assert not same_feedback(a, c)  # "up" and 1.0 are the same reward, not the same body
