"""The embeddings file format, and the checks every set of embeddings passes before a study uses it.

An embeddings ``.npz`` needs two arrays; any tool can write it (``numpy.savez``):

- ``clip_ids`` ``(n_clips,)``: the clip keys of the study (``"blues.00017"``), unique;
- ``embeddings`` ``(n_clips, r, dim)``: ``r`` windows per clip (one window: ``(n_clips, 1, dim)``), finite.

Optional scalars: ``window`` (seconds each of the ``r`` windows spans, see :mod:`brain2music.windows`) and
``space`` (``"paper"`` or ``"standardized"``, the metric space its identification accuracies use).
``brain2music embed`` also writes ``config`` (JSON: the encoder, its window and settings), ``version`` and
``skipped`` (JSON); a ``window`` or ``space`` inside ``config`` counts as given.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from brain2music._checks import check_choice
from brain2music.errors import DataError

__all__ = ["SPACES", "check_embedding_arrays", "default_space", "open_npz", "plain_config", "read_config"]

#: Metric spaces a file may name (:mod:`brain2music.evaluate.space`).
SPACES = ("paper", "standardized")


def open_npz(path) -> np.lib.npyio.NpzFile:
    """``np.load(path)`` of an ``.npz`` archive (close it, or use ``with``); a single ``.npy`` array or a
    file numpy cannot read raises DataError naming the file."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as an embeddings .npz ({exc})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path}: expected an .npz archive with keys 'clip_ids' and 'embeddings'; found a single array "
            f"of shape {getattr(npz, 'shape', '?')}"
        )
    return npz


def check_embedding_arrays(clip_ids: Any, embeddings: Any, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(clip_ids as str (n,), embeddings as float32 (n, r, dim))``, or a DataError naming ``where``, the
    key, what was expected and what was found."""
    ids = np.asarray(clip_ids)
    emb = np.asarray(embeddings)
    if ids.ndim != 1:
        raise DataError(f"{where}: key 'clip_ids' must have shape (n_clips,); found shape {ids.shape}")
    if emb.dtype.kind not in "fiu":
        raise DataError(f"{where}: key 'embeddings' must hold numbers; found dtype {emb.dtype}")
    if emb.ndim != 3:
        hint = " (one window per clip: reshape to (n_clips, 1, dim))" if emb.ndim == 2 else ""
        raise DataError(
            f"{where}: key 'embeddings' must have shape (n_clips, r, dim); found shape {emb.shape}{hint}"
        )
    if emb.shape[0] != ids.shape[0]:
        raise DataError(
            f"{where}: key 'clip_ids' has {ids.shape[0]} entries but 'embeddings' has {emb.shape[0]} rows; "
            "expected one id per row"
        )
    if 0 in emb.shape:
        raise DataError(f"{where}: key 'embeddings' is empty; found shape {emb.shape}")
    ids = ids.astype(str)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{where}: key 'clip_ids' must be unique; repeated: {list(uniq[counts > 1][:5])}")
    emb = emb.astype(np.float32, copy=False)
    bad = ~np.isfinite(emb).all(axis=(1, 2))
    if bad.any():
        raise DataError(
            f"{where}: key 'embeddings' must be finite; {int(bad.sum())} clip(s) hold NaN or inf (or overflow "
            f"float32), e.g. {list(ids[bad][:5])}"
        )
    return ids, emb


def plain_config(npz, *, where: str) -> dict[str, Any]:
    """The config of an opened ``.npz``: its ``config`` JSON (if any) with the plain ``window`` and ``space``
    keys folded in and checked (they must agree with the JSON where both are given)."""
    config: dict[str, Any] = {}
    if "config" in npz.files:
        try:
            config = json.loads(str(npz["config"]))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{where}: key 'config' must be a JSON object; it does not parse ({exc})"
            ) from exc
        if not isinstance(config, dict):
            raise DataError(f"{where}: key 'config' must be a JSON object; found {type(config).__name__}")
    for key in ("window", "space"):
        if key in npz.files:
            value = npz[key]
            if value.shape != ():
                raise DataError(f"{where}: key {key!r} must be a scalar; found shape {value.shape}")
            value = value.item()
            if key in config and config[key] != value:
                raise DataError(
                    f"{where}: key {key!r} is {value!r} but config[{key!r}] is {config[key]!r}; give one value"
                )
            config[key] = value
    check_window(config.get("window"), where=where)
    check_file_space(config.get("space"), where=where)
    return config


def check_window(window: Any, *, where: str) -> None:
    """``None`` (not given) or a positive finite number of seconds."""
    if window is None:
        return
    ok = isinstance(window, (int, float, np.integer, np.floating)) and not isinstance(window, bool)
    if not ok or not np.isfinite(window) or window <= 0:
        raise DataError(f"{where}: key 'window' must be a positive number of seconds; found {window!r}")


def check_file_space(space: Any, *, where: str) -> None:
    """``None`` (not given) or one of :data:`SPACES`."""
    if space is not None:
        check_choice(space, SPACES, what=f"{where}: key 'space'", error=DataError)


def read_config(path) -> dict[str, Any]:
    """The :func:`plain_config` of the ``.npz`` at ``path``, without reading its arrays."""
    with open_npz(path) as npz:
        return plain_config(npz, where=str(path))


def default_space(config: dict[str, Any]) -> str:
    """The metric space of precomputed embeddings with this config: the ``space`` it names, else the
    registered default of the encoder it records (a file of ``brain2music embed``), else ``standardized``.

    ``standardized`` z-scores each dimension with training statistics, so dimensions of unknown units
    (a tool's MFCCs, whose first coefficient is 100x the others) weigh alike; the paper's raw-vector space
    is the default only for learned embeddings this package computed.
    """
    from brain2music.embeddings.registry import encoder_metric_space, list_encoders

    if config.get("space"):
        return str(config["space"])
    own = config.get("encoder")
    return encoder_metric_space(own) if own in list_encoders() else "standardized"
