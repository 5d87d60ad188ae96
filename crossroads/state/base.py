"""The state protocol: the few atomic operations the gateway needs from shared state.

=====================  ===================================================================
``admit``              count rate windows and hold a cost against budgets, all or nothing;
                       the first of several candidate costs that fits is the one held
``settle``             release holds and charge the actual cost (and adjust token windows)
``budget_used``        what each budget has spent and holds now
``put_record``         a small JSON record with a lifetime (a circuit breaker's state)
``get_records``        several records at once
``add_counters``       add to integer counters of hashes (endpoint health, bandits)
``read_counters``      several hashes of counters at once
=====================  ===================================================================

Money is in integer nano-USD (:data:`NANO` per dollar) so that counters add exactly on
every backend. Backends: :mod:`~crossroads.state.memory` (one process),
:mod:`~crossroads.state.sqlite` (one machine) and :mod:`~crossroads.state.redis` (a fleet),
registered in ``STATES`` (:mod:`crossroads.registry`) and held to one contract suite
(``tests/state/test_contract.py``). :class:`GuardedState` bounds every call by
``state.timeout_ms`` and, after a failure, refuses calls at once for ``retry_after_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from crossroads.exceptions import StateUnavailableError

log = logging.getLogger("crossroads.state")
T = TypeVar("T")
NANO = 1_000_000_000  # state amounts are integer nano-USD
# How long an applied settlement is remembered. A batch is sent again after the guard's
# back-off (seconds); one whose first write had an unknown fate and is written after a
# longer outage may be charged twice, the side a budget can afford. Costs one small record
# per request for this long (Redis: ~200 bytes a key measured, ~60 MB at 1,000 req/s).
SETTLED_TTL_S = 300.0
TIMEOUTS_TO_BACK_OFF = 3


@dataclass(slots=True)
class Window:
    """A rate window to count: add ``cost`` to ``key`` unless that passes ``limit``; the key
    lives ``ttl_s`` seconds from its first count."""

    key: str
    cost: int
    limit: int
    ttl_s: int


@dataclass(slots=True)
class Budget:
    """A budget to hold a cost against: spent plus held may not pass ``limit``;
    ``ttl_s`` (None: forever) is how long its counters outlive their last change."""

    key: str
    limit: int
    ttl_s: int | None


@dataclass(slots=True)
class Admission:
    """What :meth:`StateBackend.admit` did. ``refused`` is ``None`` (admitted: ``choice``
    is the index of the cost held), ``"window"`` (``window`` is its index) or
    ``"budget"`` (no cost fits). ``window_used``: each window's count after the request
    (before it, if refused); ``budget_used``: each budget's spent plus held, before it."""

    refused: str | None
    choice: int = -1
    window: int = -1
    window_used: list[int] = field(default_factory=list)
    budget_used: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Settlement:
    """Release hold ``hold`` on ``budgets`` and charge ``amount`` to each; add ``delta`` to
    each of ``windows`` (key, delta) that still exists. ``marker``: the key under which the
    backend remembers, for :data:`SETTLED_TTL_S`, that this settlement was applied, so that
    a batch sent again (its first write timed out after the backend had applied it) is not
    charged twice; empty, nothing is remembered."""

    budgets: list[Budget]
    hold: str
    amount: int
    windows: list[tuple[str, int]] = field(default_factory=list)
    marker: str = ""


class StateBackend:
    """Shared state; every operation is atomic. ``now`` is wall-clock seconds (hold expiry
    is decided by the caller's clock, so tests can move time)."""

    name = "state"

    async def admit(
        self,
        windows: Sequence[Window],
        budgets: Sequence[Budget],
        costs: Sequence[int],
        hold: str,
        hold_until: float,
        now: float,
    ) -> Admission:
        """Count every window and hold the first of ``costs`` that fits every budget (until
        ``hold_until``), or change nothing. Expired holds are released first."""
        raise NotImplementedError

    async def settle(self, settlements: Sequence[Settlement], now: float) -> None:
        """Apply settlements; a hold already released or expired releases nothing, and the
        amount is charged all the same. A settlement whose ``marker`` was applied less than
        :data:`SETTLED_TTL_S` before ``now`` applies nothing."""
        raise NotImplementedError

    async def budget_used(self, keys: Sequence[str], now: float) -> list[int]:
        """Spent plus held, per budget key."""
        raise NotImplementedError

    async def put_record(self, key: str, value: str, ttl_s: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds."""
        raise NotImplementedError

    async def get_records(self, keys: Sequence[str]) -> list[str | None]:
        """The live record of each key, or None."""
        raise NotImplementedError

    async def add_counters(self, updates: dict[str, dict[str, int]], ttl_s: float) -> None:
        """Add to counters ``updates[key][field]``; each key lives ``ttl_s`` from its change."""
        raise NotImplementedError

    async def read_counters(self, keys: Sequence[str]) -> list[dict[str, int]]:
        """Every counter of each key (empty when the key is gone)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


def first_fitting(costs: Sequence[int], spent: Sequence[int], budgets: Sequence[Budget]) -> int:
    """The index of the first of ``costs`` that fits every budget (``spent`` of each so
    far), or -1; 0 when there are no budgets."""
    if not budgets:
        return 0
    return next(
        (
            c
            for c, cost in enumerate(costs)
            if all(u + cost <= b.limit for u, b in zip(spent, budgets, strict=True))
        ),
        -1,
    )


def open_state(spec: str, **settings: Any) -> StateBackend:
    """The backend for a ``state.backend`` setting; the part before the first ``:`` names
    its factory in ``STATES`` (plugins too), which gets the whole spec and ``settings``
    (``timeout_s``). Nothing connects until the first operation."""
    from crossroads.registry import STATES

    backend: StateBackend = STATES.get(spec.partition(":")[0])(spec, **settings)
    return backend


class GuardedState:
    """A backend whose calls end within ``timeout_s`` and raise
    :class:`StateUnavailableError` on any failure. After an error (or three timeouts in a
    row) calls fail at once for ``retry_after_s``, so a dead backend costs requests nothing
    but the policy."""

    def __init__(self, backend: StateBackend, timeout_s: float, retry_after_s: float) -> None:
        self.backend = backend
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.down_until = 0.0
        self.failures = 0
        self.consecutive = 0
        self.last_error: str | None = None
        self._logged = 0.0

    @property
    def available(self) -> bool:
        """Whether calls are being tried (not inside a failure's back-off)."""
        return time.monotonic() >= self.down_until

    def retry_in(self) -> float:
        """Seconds until the backend is tried again."""
        return max(0.0, self.down_until - time.monotonic())

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one backend operation under the timeout and the back-off."""
        if time.monotonic() < self.down_until:
            raise StateUnavailableError(
                f"state backend {self.backend.name} is down ({self.last_error}); "
                f"next try in {self.retry_in():.1f} s"
            )
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await operation()
        except Exception as exc:  # any failure of the backend: the same policy applies
            self._down(exc)
            raise StateUnavailableError(
                f"state backend {self.backend.name} failed: {self.last_error}"
            ) from exc
        self.consecutive = 0
        return result

    def _down(self, exc: BaseException) -> None:
        self.failures += 1
        self.consecutive += 1
        if isinstance(exc, TimeoutError):
            self.last_error = f"no answer within {self.timeout_s * 1000:g} ms"
            # One slow answer (a busy event loop) fails its call only; several in a row
            # mean the backend is gone.
            if self.consecutive < TIMEOUTS_TO_BACK_OFF:
                return
        else:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self.down_until = time.monotonic() + self.retry_after_s
        now = time.monotonic()
        if now - self._logged >= 60:  # at most once a minute
            self._logged = now
            log.warning("state backend %s failed: %s", self.backend.name, self.last_error)

    def stats(self) -> dict[str, Any]:
        """For ``/ready``: the backend, whether it is up, failures since start."""
        return {
            "backend": self.backend.name,
            "available": self.available,
            "failures": self.failures,
            "last_error": self.last_error,
        }
