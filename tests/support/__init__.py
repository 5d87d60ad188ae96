"""Test and benchmark equipment: a fake OpenAI-compatible upstream with switchable faults.

``from tests.support import FakeUpstream`` — see :mod:`tests.support.fake_upstream`.
Names are imported lazily, so ``python -m tests.support.fake_upstream`` runs cleanly.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "FakeUpstream": "tests.support.fake_upstream",
    "FakeUpstreamApp": "tests.support.fake_upstream",
    "FakeUpstreamConfig": "tests.support.fake_upstream",
    "FAULT_KINDS": "tests.support.faults",
    "Fault": "tests.support.faults",
    "parse_fault": "tests.support.faults",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tests.support' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
