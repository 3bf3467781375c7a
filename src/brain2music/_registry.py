"""One registry helper for every plug-in family (encoders, generators, decoder methods, compute backends).

A :class:`Registry` maps names to entries (a factory, a class, a record); ``names()`` is what every
``list_*`` function returns, and an unknown name raises one :class:`~brain2music.errors.ConfigError`
that names the kind, the given value and the choices.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from brain2music.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")
_MISSING = object()


class Registry(Generic[T]):
    """Named entries of one ``kind`` (``"encoder"``, ``"generator"``, ...).

    ``order="sorted"`` lists names alphabetically; ``"registration"`` in the order they were registered
    (for families whose order means something, e.g. a default list of methods).
    """

    def __init__(self, kind: str, *, order: str = "sorted"):
        if order not in ("sorted", "registration"):
            raise ConfigError(f"order must be one of sorted, registration; got {order!r}")
        self.kind = kind
        self.order = order
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Store ``entry`` under ``name`` (replacing an earlier one) and return it (usable in decorators)."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty string; got {name!r}")
        self._entries[name] = entry
        return entry

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The entry registered as ``name``; else ``default`` when given, else a :class:`ConfigError`
        naming the kind, ``name`` and the known names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            if default is not _MISSING:
                return default
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}") from None

    # Mapping-style access, so a test can swap an entry in and out (``monkeypatch.setitem``).
    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __setitem__(self, name: str, entry: T) -> None:
        self.register(name, entry)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def pop(self, name: str, default: Any = _MISSING) -> T:
        """Remove and return the entry of ``name`` (``default`` when absent and given)."""
        if default is _MISSING:
            return self._entries.pop(name)
        return self._entries.pop(name, default)

    def names(self) -> list[str]:
        """The registered names (see ``order``)."""
        return sorted(self._entries) if self.order == "sorted" else list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
