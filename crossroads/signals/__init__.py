"""Signals: cheap features of a request that decision rules test, referenced as ``kind:name``.

Every signal answers for a batch of requests, asynchronously, within its time budget.
Cheap signals override :meth:`Signal.compute` (synchronous, one request) and the pipeline
calls them inline; expensive ones (embeddings, classifiers) override :meth:`Signal.evaluate`
and set ``is_async = True`` so the pipeline runs them concurrently under ``timeout_ms``.
"""

from __future__ import annotations

from crossroads.signals.base import Signal, build_signal, signal_kinds

__all__ = ["Signal", "build_signal", "signal_kinds"]
