"""The one registry of crossroads: every kind of pluggable part by name, built-ins and
entry-point plugins through the same code path.

=============  ==========================  ==========================================
registry       entry-point group           what a name gives
=============  ==========================  ==========================================
``SIGNALS``    ``crossroads.signals``      a :class:`~crossroads.signals.base.Signal`
``SELECTORS``  ``crossroads.selectors``    a :class:`~crossroads.selection.Selector`
``UPSTREAMS``  ``crossroads.upstreams``    a :class:`~crossroads.dispatch.base.Upstream`
``ROUTERS``    ``crossroads.routers``      a learned router class (:mod:`crossroads.routers`)
``STORES``     ``crossroads.stores``       a trace store factory ``(spec, settings) -> store``
``STATES``     ``crossroads.states``       a state backend factory ``(spec, settings) -> state``
=============  ==========================  ==========================================

A plugin's implementation class carries its config
class as ``config_class``, a pydantic model whose tag field (``kind``, or ``method`` for
selectors) is a ``Literal`` of its name; the config's unions are open, so a plugin's name
can be written in YAML like a built-in one.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Implementations by name; third-party ones come from the entry-point ``group``.
    A built-in may be registered as ``"module:attribute"`` and is imported on first use.

    >>> reg: Registry[type] = Registry("crossroads.example", "example")
    >>> @reg.register("x")
    ... class X: ...
    >>> reg.get("x") is X
    True
    """

    def __init__(self, group: str, what: str) -> None:
        self.group = group
        self.what = what
        self._items: dict[str, T | str] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an implementation under ``name``."""

        def add(item: T) -> T:
            self._items[name] = item
            return item

        return add

    def register_lazy(self, name: str, spec: str) -> None:
        """Register ``module:attribute``, imported when ``name`` is first used."""
        self._items.setdefault(name, spec)

    def get(self, name: str) -> T:
        """The implementation called ``name``; a clear error lists the known ones."""
        if name not in self._items:
            self._load_plugins()
        try:
            item = self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.what} {name!r}; known: {known}") from None
        if isinstance(item, str):
            module, _, attribute = item.partition(":")
            item = self._items[name] = getattr(import_module(module), attribute)
        return item  # type: ignore[return-value]

    def find(self, name: str) -> T | None:
        """The implementation called ``name``, or None (plugins included)."""
        try:
            return self.get(name)
        except KeyError:
            return None

    def names(self) -> list[str]:
        """Every registered name, plugins included."""
        self._load_plugins()
        return sorted(self._items)

    def reload_plugins(self) -> None:
        """Look at the installed entry points again (after installing a plugin)."""
        self._plugins_loaded = False
        self._load_plugins()

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            self._items.setdefault(ep.name, ep.value)


def plugin_config(registry: Registry[Any], name: str) -> Any:
    """The config class of the plugin registered as ``name``, or None."""
    item = registry.find(name)
    return getattr(item, "config_class", None)


SIGNALS: Registry[type[Any]] = Registry("crossroads.signals", "signal kind")
SELECTORS: Registry[type[Any]] = Registry("crossroads.selectors", "selection method")
UPSTREAMS: Registry[type[Any]] = Registry("crossroads.upstreams", "upstream kind")
ROUTERS: Registry[type[Any]] = Registry("crossroads.routers", "router")
STORES: Registry[Callable[..., Any]] = Registry("crossroads.stores", "trace store")
STATES: Registry[Callable[..., Any]] = Registry("crossroads.states", "state backend")
STATES.register_lazy("memory", "crossroads.state.memory:open_memory")
STATES.register_lazy("sqlite", "crossroads.state.sqlite:open_sqlite")
STATES.register_lazy("redis", "crossroads.state.redis:open_redis")
STATES.register_lazy("rediss", "crossroads.state.redis:open_redis")
STATES.register_lazy("unix", "crossroads.state.redis:open_redis")
# Learned signals: their modules (numpy heads, the encoder) load only when a config names them.
SIGNALS.register_lazy("domain", "crossroads.signals.domain:DomainSignal")
SIGNALS.register_lazy("complexity", "crossroads.signals.complexity:ComplexitySignal")
SIGNALS.register_lazy("jailbreak", "crossroads.signals.jailbreak:JailbreakSignal")
SIGNALS.register_lazy("ood", "crossroads.signals.ood:OodSignal")
# Their patterns and detector models too.
SIGNALS.register_lazy("language", "crossroads.signals.language:LanguageSignal")
SIGNALS.register_lazy("pii", "crossroads.signals.pii:PiiSignal")
UPSTREAMS.register_lazy("openai", "crossroads.dispatch.openai:OpenAIUpstream")
UPSTREAMS.register_lazy("local", "crossroads.dispatch.openai:OpenAIUpstream")
UPSTREAMS.register_lazy("anthropic", "crossroads.dispatch.anthropic:AnthropicUpstream")
UPSTREAMS.register_lazy("mock", "crossroads.dispatch.mock:MockUpstream")
