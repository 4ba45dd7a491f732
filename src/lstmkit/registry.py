"""A name -> object registry, shared by the data sources and the task models (STYLE rule 7)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from lstmkit.errors import LstmkitError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Objects registered under unique names with ``@registry.register(name)``.

    Args:
        what: how an unknown name is reported, e.g. ``"data source"`` gives
            ``data source: expected one of digits, mnist, got 'nope'``.
        error: the ``LstmkitError`` subclass raised for an unknown name.
    """

    def __init__(self, what: str, error: type[LstmkitError]) -> None:
        self.what, self.error = what, error
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise self.error(f"{self.what}: expected one of {', '.join(self.names())}, got {name!r}") from None
