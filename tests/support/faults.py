"""Faults the fake upstream can inject, and the schedule that decides when.

A fault is written as ``name`` or ``name:argument``::

    refuse              close the connection without answering
    500 | 502 | 503     answer that status with an OpenAI-style error body
    429[:seconds]       answer 429 with ``Retry-After`` (default 1 second)
    slow_ttft:<s>       wait ``s`` seconds before the first byte of the answer
    hang                accept the request and never answer (until the client leaves)
    malformed_json      200 with a body (or SSE event) that is not valid JSON
    truncated_body      promise a Content-Length, send part of it, close
    cut_stream:<n>      send ``n`` SSE events, then close without ``[DONE]``
    slow_drip:<s>       wait ``s`` seconds between chunks (or body pieces)

Example: ``parse_fault("cut_stream:3")`` → ``Fault(kind="cut_stream", arg=3.0)``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

FAULT_KINDS: dict[str, float | None] = {
    # kind -> default argument (None: the fault takes no argument)
    "refuse": None,
    "500": None,
    "502": None,
    "503": None,
    "429": 1.0,
    "slow_ttft": 1.0,
    "hang": None,
    "malformed_json": None,
    "truncated_body": None,
    "cut_stream": 1.0,
    "slow_drip": 0.1,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One parsed fault: its kind and numeric argument (seconds or a chunk count)."""

    kind: str
    arg: float | None = None

    def __str__(self) -> str:
        if self.arg is None:
            return self.kind
        arg = int(self.arg) if float(self.arg).is_integer() else self.arg
        return f"{self.kind}:{arg}"


def parse_fault(spec: str | Fault | None) -> Fault | None:
    """Parse ``"kind[:arg]"``; ``None``, ``""`` and ``"none"`` mean no fault.

    Raises ``ValueError`` naming the known kinds when the spec is not one of them.
    """
    if spec is None or isinstance(spec, Fault):
        return spec
    spec = spec.strip()
    if spec in ("", "none", "ok"):
        return None
    kind, _, raw_arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in FAULT_KINDS:
        known = ", ".join(FAULT_KINDS)
        raise ValueError(f"unknown fault {spec!r}: use one of {known} (e.g. 'cut_stream:3')")
    default = FAULT_KINDS[kind]
    if not raw_arg:
        return Fault(kind, default)
    if default is None:
        raise ValueError(f"fault {kind!r} takes no argument, got {spec!r}")
    try:
        arg = float(raw_arg)
    except ValueError as exc:
        raise ValueError(f"fault {spec!r}: argument must be a number, got {raw_arg!r}") from exc
    if arg < 0:
        raise ValueError(f"fault {spec!r}: argument must be >= 0")
    return Fault(kind, arg)


class FaultSchedule:
    """The server-wide fault: applied with ``probability`` to the next ``count`` requests.

    ``count=None`` means every request until changed. Thread-safe, because tests
    switch faults from the test thread while the server runs in its own thread.
    """

    def __init__(
        self,
        fault: str | Fault | None = None,
        probability: float = 1.0,
        count: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.set(fault, probability, count)

    def set(
        self, fault: str | Fault | None, probability: float = 1.0, count: int | None = None
    ) -> None:
        """Replace the current fault (``None`` clears it)."""
        parsed = parse_fault(fault)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {probability}")
        if count is not None and count < 0:
            raise ValueError(f"count must be >= 0 or None, got {count}")
        with self._lock:
            self.fault = parsed
            self.probability = probability
            self.remaining = count

    def draw(self) -> Fault | None:
        """The fault for the next request, or ``None``; consumes one of ``count``."""
        if self.fault is None:  # fast path, no lock: the common benchmark case
            return None
        with self._lock:
            fault = self.fault
            if fault is None or self.remaining == 0:
                return None
            if self.probability < 1.0 and self._rng.random() >= self.probability:
                return None
            if self.remaining is not None:
                self.remaining -= 1
            return fault

    def describe(self) -> dict[str, object]:
        """The schedule as JSON-ready data, for ``GET /_stats``."""
        with self._lock:
            return {
                "fault": str(self.fault) if self.fault else None,
                "probability": self.probability,
                "remaining": self.remaining,
            }
