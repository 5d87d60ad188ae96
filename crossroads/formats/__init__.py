"""Wire formats: each module converts one API's JSON and SSE to and from the canonical types
of :mod:`crossroads.types`, in both directions (what a client sends us, what we send an
upstream).

=====================  ===========================  =======================================
format                 inbound route                upstream kind
=====================  ===========================  =======================================
``openai_chat``        ``POST /v1/chat/completions``  ``openai`` (chat)
``openai_completions`` ``POST /v1/completions``       ``openai`` (completions)
``openai_responses``   ``POST /v1/responses``         none (answers are rendered, never sent)
``openai_embeddings``  ``POST /v1/embeddings``        ``openai`` (embeddings)
``anthropic_messages`` ``POST /v1/messages``          ``anthropic``
=====================  ===========================  =======================================
"""

from __future__ import annotations

from crossroads.formats.base import Format, StreamEncoder, get_format

__all__ = ["Format", "StreamEncoder", "get_format"]
