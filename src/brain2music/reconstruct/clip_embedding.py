"""Glue between the reconstruction stage and the embeddings layer.

The reconstruction code needs only this much of an encoder (the protocol of
:mod:`brain2music.embeddings`): attributes ``sr``, ``dim``, ``window``, ``n_windows`` and
``embed(audio, sr) -> (n_windows, dim)``. A name is resolved with ``brain2music.embeddings.get_encoder``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from brain2music.errors import ConfigError, DataError
from brain2music.stimuli import STIMULUS_DURATION, apply_fades, rms_normalize

__all__ = ["clip_embedding", "encoder_config", "encoder_name", "prepare_clip", "resolve_encoder"]


def resolve_encoder(encoder: Any, **options):
    """Return an encoder object for a registry name (built with ``options``) or an encoder object (unchanged)."""
    if isinstance(encoder, str):
        try:
            from brain2music.embeddings.registry import get_encoder
        except ImportError as exc:  # pragma: no cover - the embeddings layer ships with the package
            raise ConfigError(
                f"cannot resolve encoder {encoder!r}: brain2music.embeddings is not available ({exc})"
            ) from exc
        return get_encoder(encoder, **options)
    if options:
        raise ConfigError(
            f"got an encoder object and options {sorted(options)}; pass options to its constructor"
        )
    missing = [a for a in ("sr", "dim", "embed") if not hasattr(encoder, a)]
    if missing:
        raise ConfigError(
            f"encoder must be a registry name or an object with sr, dim and embed(audio, sr); "
            f"{type(encoder).__name__} lacks {', '.join(missing)}"
        )
    return encoder


def encoder_name(encoder: Any) -> str:
    """The registry name of ``encoder`` (its ``name`` attribute, else its class name)."""
    if isinstance(encoder, str):
        return encoder
    return str(getattr(encoder, "name", None) or type(encoder).__name__)


def encoder_config(encoder: Any) -> dict:
    """A JSON-able description of ``encoder``: its ``config`` (attribute or method) or its basic attributes."""
    cfg = getattr(encoder, "config", None)
    if callable(cfg):
        cfg = cfg()
    if cfg is None and hasattr(encoder, "get_params"):
        cfg = encoder.get_params()
    out = {}
    if isinstance(cfg, dict):
        out.update({k: v for k, v in cfg.items() if isinstance(v, (str, int, float, bool, type(None), list))})
    for attr in ("sr", "dim", "window", "n_windows"):
        val = getattr(encoder, attr, None)
        if isinstance(val, (int, float, np.integer, np.floating)):
            out.setdefault(attr, val.item() if hasattr(val, "item") else val)
    return out


def prepare_clip(audio: np.ndarray, sr: int, *, duration: float = STIMULUS_DURATION) -> np.ndarray:
    """Cut/pad ``audio (n_samples,)`` to ``duration`` s, with the stimuli's 2-s fades and RMS level.

    Library tracks, stimuli and generated clips all pass through this so their embeddings are comparable.
    """
    n = int(round(duration * sr))
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)[:n]
    if len(audio) < n:
        audio = np.pad(audio, (0, n - len(audio)))
    return rms_normalize(apply_fades(audio, sr))


def clip_embedding(encoder, audio: np.ndarray, sr: int, *, source: str = "audio") -> np.ndarray:
    """Embed one prepared clip: ``audio (n_samples,)`` → ``(n_windows, dim)`` float32, shape-checked."""
    emb = np.asarray(encoder.embed(audio, sr), dtype=np.float32)
    if emb.ndim == 1:
        emb = emb[None, :]
    dim = int(getattr(encoder, "dim", emb.shape[-1]))
    if emb.ndim != 2 or emb.shape[1] != dim:
        raise DataError(
            f"{source}: encoder {encoder_name(encoder)!r} returned an embedding of shape {emb.shape}; "
            f"expected (n_windows, {dim})"
        )
    if not np.all(np.isfinite(emb)):
        raise DataError(f"{source}: encoder {encoder_name(encoder)!r} returned NaN or infinite values")
    return emb
