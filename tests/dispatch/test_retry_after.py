"""An upstream's Retry-After is read strictly: finite non-negative seconds or an HTTP date,
capped; anything else is ignored. What the gateway sends is whole seconds, at least 1."""

from __future__ import annotations

import email.utils
import time

import pytest

from crossroads.dispatch.errors import _retry_after
from crossroads.exceptions import UpstreamError
from crossroads.gateway.errors import render


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e400", "soon", ""])
def test_nonsense_retry_after_is_ignored(value: str) -> None:
    assert _retry_after({"retry-after": value}) is None


def test_seconds_and_dates_are_read_and_capped() -> None:
    assert _retry_after({"retry-after": "2"}) == 2.0
    assert _retry_after({"retry-after": "999999"}) == 3600.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (_retry_after({"retry-after": later}) or 0) <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert _retry_after({"retry-after": past}) == 0.0


@pytest.mark.parametrize(("given", "sent"), [(0.2, "1"), (1.5, "2"), (7.0, "7")])
def test_the_gateway_sends_whole_seconds(given: float, sent: str) -> None:
    _, _, headers = render(UpstreamError("busy", status=503, retry_after=given))
    assert headers["retry-after"] == sent
