"""The decoder-method registry: ``get_method(name)``, ``list_methods()``, ``register_method``.

Adding a method is one file in this package (a :class:`~brain2music.study.methods.base.DecoderMethod`
subclass) and one line in :func:`_register_builtins`.
"""

from __future__ import annotations

from brain2music._registry import Registry
from brain2music.errors import ConfigError
from brain2music.study.methods.base import NEEDS, DecoderMethod, FittedMethod, GroupMethod

__all__ = [
    "DEFAULT_METHODS",
    "DecoderMethod",
    "FittedMethod",
    "GroupMethod",
    "get_method",
    "list_methods",
    "register_method",
]

_REGISTRY: Registry[type[DecoderMethod]] = Registry("method", order="registration")

#: The methods ``reproduce`` runs by default (the paper's and its peers'; not ``debug``).
DEFAULT_METHODS = ("ridge", "ensemble", "encsel", "aligned", "krr-rbf")


def register_method(cls: type[DecoderMethod]) -> type[DecoderMethod]:
    """Register a method class under ``cls.name`` (usable as a decorator)."""
    unknown = set(cls.needs) - NEEDS
    if unknown:
        raise ConfigError(
            f"method {cls.name!r} declares unknown needs {sorted(unknown)}; known: {sorted(NEEDS)}"
        )
    return _REGISTRY.register(cls.name, cls)


def list_methods() -> list[str]:
    """Registered method names (registration order)."""
    return _REGISTRY.names()


def get_method(name: str) -> DecoderMethod:
    """A new instance of the method registered as ``name`` (an unknown name raises :class:`ConfigError`)."""
    return _REGISTRY.get(name)()


def _register_builtins() -> None:
    from brain2music.study.methods.aligned import AlignedMethod
    from brain2music.study.methods.debug import DebugMethod
    from brain2music.study.methods.encsel import EncselMethod
    from brain2music.study.methods.ensemble import EnsembleMethod
    from brain2music.study.methods.krr_rbf import KernelRbfMethod
    from brain2music.study.methods.ridge import RidgeMethod

    for cls in (RidgeMethod, EnsembleMethod, EncselMethod, AlignedMethod, KernelRbfMethod, DebugMethod):
        register_method(cls)


_register_builtins()
