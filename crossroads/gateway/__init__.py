"""The OpenAI-compatible gateway: a lean ASGI app over the routing pipeline."""

from __future__ import annotations

from crossroads.gateway.app import Gateway, create_app

__all__ = ["Gateway", "create_app"]
