"""The signal interface and the registry that builds signals from config."""

from __future__ import annotations

from typing import Any, ClassVar

from crossroads.registry import SIGNALS
from crossroads.types import RoutingRequest, SignalResult, ValueSpec

__all__ = ["SIGNALS", "Signal", "build_signal", "signal_kinds"]


class Signal:
    """A named feature of a request.

    ``name`` is ``kind:name`` as rules reference it. Subclasses set ``kind`` and implement
    :meth:`compute` (cheap, synchronous) or :meth:`evaluate` (batched, asynchronous).
    """

    kind: ClassVar[str] = ""
    is_async: ClassVar[bool] = False
    value_spec: ClassVar[ValueSpec | None] = None
    """What ``SignalResult.value`` holds, for rules that compare it (None: not comparable)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.name = f"{self.kind}:{config.name}"
        self.timeout_ms: float = config.timeout_ms
        # Read on every request: a plain attribute, not the config model's (pydantic's
        # attribute hook costs several times a plain read).
        self.last_user: bool = getattr(config, "scope", "all") == "last_user"

    @classmethod
    def value_spec_for(cls, config: Any) -> ValueSpec | None:
        """The value spec of one configured signal (default :attr:`value_spec`)."""
        return cls.value_spec

    def prepare(self) -> None:
        """Build what :meth:`compute` needs (compile patterns, load models); called once."""

    def compute(self, request: RoutingRequest) -> SignalResult:
        """The signal's value for one request."""
        raise NotImplementedError(f"{type(self).__name__} implements neither compute nor evaluate")

    async def evaluate(self, requests: list[RoutingRequest]) -> list[SignalResult]:
        """The signal's values for a batch of requests (default: :meth:`compute` each)."""
        return [self.compute(r) for r in requests]

    def text_of(self, request: RoutingRequest) -> str:
        """The text this signal looks at: all messages, or the last user message."""
        return request.last_user_text if self.last_user else request.text


def build_signal(config: Any) -> Signal:
    """The signal for one ``signals[]`` config entry, prepared."""
    _load_builtin()
    signal = SIGNALS.get(config.kind)(config)
    signal.prepare()
    return signal


def signal_kinds() -> list[str]:
    """Every registered signal kind."""
    _load_builtin()
    return SIGNALS.names()


def _load_builtin() -> None:
    # Built-in kinds register on import, through the same registry plugins use.
    import crossroads.signals.budget  # noqa: F401
    import crossroads.signals.code  # noqa: F401
    import crossroads.signals.embedding  # noqa: F401
    import crossroads.signals.keyword  # noqa: F401
    import crossroads.signals.metadata  # noqa: F401
    import crossroads.signals.tokens  # noqa: F401
