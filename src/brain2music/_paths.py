"""Where brain2music keeps its caches: the argument, else ``$BRAIN2MUSIC_CACHE``, else ``~/.cache/brain2music``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_folder"]

#: Environment variable naming the root of every brain2music cache.
CACHE_ENV = "BRAIN2MUSIC_CACHE"


def cache_folder(kind: str, given: str | os.PathLike | None = None) -> Path:
    """The cache folder for ``kind`` (``"embeddings"``, ``"live"``, ...).

    ``given`` (a caller's explicit folder) wins as it is; otherwise ``$BRAIN2MUSIC_CACHE/<kind>``, else
    ``~/.cache/brain2music/<kind>``.
    """
    if given is not None:
        return Path(given)
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "brain2music") / kind
