"""A name → implementation registry, filled by built-ins and by entry-point plugins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Implementations by name; third-party ones come from the entry-point ``group``.

    >>> reg: Registry[type] = Registry("crossroads.example", "example")
    >>> @reg.register("x")
    ... class X: ...
    >>> reg.get("x") is X
    True
    """

    def __init__(self, group: str, what: str) -> None:
        self.group = group
        self.what = what
        self._items: dict[str, T] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an implementation under ``name``."""

        def add(item: T) -> T:
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        """The implementation called ``name``; a clear error lists the known ones."""
        if name not in self._items:
            self._load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.what} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Every registered name, plugins included."""
        self._load_plugins()
        return sorted(self._items)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            self._items.setdefault(ep.name, ep.load())
