"""Save and reload fitted decoders (joblib), with their config and the package version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from brain2music import __version__
from brain2music._io import atomic_path
from brain2music.errors import DataError, DataFileNotFoundError

__all__ = ["save_decoder", "load_decoder", "load_decoder_record"]

_FORMAT = "brain2music-decoder/1"


def save_decoder(decoder: Any, path: str | os.PathLike, *, config: dict | None = None) -> Path:
    """Write a fitted decoder to ``path`` (atomically) with ``config`` and ``brain2music.__version__``."""
    import joblib

    path = Path(path)
    record = {"format": _FORMAT, "decoder": decoder, "config": dict(config or {}), "version": __version__}
    with atomic_path(path) as tmp:
        joblib.dump(record, tmp, compress=3)
    return path


def load_decoder_record(path: str | os.PathLike) -> dict:
    """The saved record: ``{"format", "decoder", "config", "version"}``."""
    import joblib

    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"decoder file not found: {path}")
    record = joblib.load(path)
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise DataError(f"{path}: not a brain2music decoder file (expected format {_FORMAT!r})")
    return record


def load_decoder(path: str | os.PathLike):
    """Reload a decoder written by :func:`save_decoder`; it has ``predict(X)``."""
    return load_decoder_record(path)["decoder"]
