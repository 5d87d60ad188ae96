"""Trace stores: where every request's trace goes, written off the request path."""

from __future__ import annotations

from crossroads.store.base import TraceStore, open_trace_store

__all__ = ["TraceStore", "open_trace_store"]
