"""A small name -> object registry used for probes, metrics and explainers."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from raikit.audits.errors import RaikitInputError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects registered under a unique name.

    Parameters
    ----------
    kind : str
        What the registry holds ("probe", "explainer", ...), used in error messages.

    Examples
    --------
    >>> probes = Registry("probe")
    >>> @probes.register("crows_pairs")
    ... def crows(): ...
    >>> probes.names()
    ['crows_pairs']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an object under ``name``."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str, *, where: str | None = None) -> T:
        """Return the object registered as ``name``.

        Raises
        ------
        RaikitInputError
            If no object has that name; the message lists every known name.
        """
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            known = ", ".join(sorted(self._items)) or "none"
            raise RaikitInputError(
                f"unknown {self.kind} {name!r}{hint}; known: {known}", where=where
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
