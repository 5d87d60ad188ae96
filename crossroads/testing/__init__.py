"""Test and benchmark equipment: a fake OpenAI-compatible upstream with switchable faults.

``from crossroads.testing import FakeUpstream`` — see :mod:`crossroads.testing.fake_upstream`.
Names are imported lazily, so ``python -m crossroads.testing.fake_upstream`` runs cleanly.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "FakeUpstream": "crossroads.testing.fake_upstream",
    "FakeUpstreamApp": "crossroads.testing.fake_upstream",
    "FakeUpstreamConfig": "crossroads.testing.fake_upstream",
    "FAULT_KINDS": "crossroads.testing.faults",
    "Fault": "crossroads.testing.faults",
    "parse_fault": "crossroads.testing.faults",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crossroads.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
