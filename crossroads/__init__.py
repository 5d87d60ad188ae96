"""crossroads: an OpenAI-compatible LLM router.

Signals feed Boolean decisions; a decision names candidate models and a selection
method; dispatch calls the chosen upstream; every request leaves a trace.
"""

__version__ = "0.1.0"
