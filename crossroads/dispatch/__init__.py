"""Dispatch: turn a routed request into an upstream call (upstreams, then endpoints,
balancing, retries and fallback as they arrive)."""
