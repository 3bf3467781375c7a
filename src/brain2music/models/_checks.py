"""Input checks shared by the decoders and encoding models (errors name the argument and what to fix)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brain2music.errors import DataError


def check_2d(array, name: str, *, dtype=np.float32) -> np.ndarray:
    """Return ``array`` as a finite 2-D float array or raise :class:`DataError`."""
    array = np.asarray(array)
    if array.ndim == 1 and name.lower().startswith("y"):
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"{name} must be 2-D (n_samples, n_features); got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{name} is empty: shape {array.shape}")
    array = np.asarray(array, dtype=dtype)
    # Column chunks: a full-size boolean temporary (4,800 x 60,000) would cost 290 MB for a yes/no answer.
    for cols in _column_chunks(array):
        block = array[:, cols]
        if not np.isfinite(block).all():
            bad = np.flatnonzero(~np.isfinite(array).all(axis=0))
            raise DataError(
                f"{name} has NaN or infinite values in columns {bad[:5].tolist()} (of {bad.size})"
            )
    return array


def _column_chunks(array: np.ndarray, floats: int = 2**23):
    """Column slices of ``array`` holding about ``floats`` elements each (bounds temporaries)."""
    n_rows, n_cols = array.shape
    step = max(1, floats // max(1, n_rows))
    return [slice(start, start + step) for start in range(0, n_cols, step)]


def check_not_constant(array: np.ndarray, name: str, what: str) -> None:
    """Raise when a column of ``array`` is constant over samples (it has no signal to learn from)."""
    const = []
    for cols in _column_chunks(array):
        block = array[:, cols]
        std = block.std(axis=0)
        const.append(cols.start + np.flatnonzero(std <= 1e-8 * (1.0 + np.abs(block).max(axis=0))))
    const = np.concatenate(const)
    if const.size:
        raise DataError(
            f"{name} has {const.size} constant {what}(s) (e.g. column(s) {const[:5].tolist()}): "
            f"a constant {what} carries no information; remove it (or fix the data) before fitting"
        )


def check_same_samples(X: np.ndarray, Y: np.ndarray, names=("X", "Y")) -> None:
    if X.shape[0] != Y.shape[0]:
        raise DataError(
            f"{names[0]} and {names[1]} must have the same number of samples; got {X.shape[0]} and {Y.shape[0]}"
        )


def check_groups(groups, n_samples: int, n_splits: int) -> np.ndarray:
    """Validate grouping labels for grouped K-fold cross-validation."""
    if groups is None:
        groups = np.arange(n_samples)
    groups = np.asarray(groups)
    if groups.shape != (n_samples,):
        raise DataError(f"groups must have shape ({n_samples},) (one label per sample); got {groups.shape}")
    n_groups = np.unique(groups).size
    if n_groups < n_splits:
        raise DataError(
            f"too few groups for {n_splits}-fold cross-validation: {n_groups} distinct group(s) "
            f"(runs or clips) among {n_samples} samples; need at least {n_splits}"
        )
    return groups


def match_clip_ids(
    wanted: Sequence[str], available: Sequence[str], *, what: str = "embeddings", source: str = "fMRI clips"
) -> np.ndarray:
    """Indices into ``available`` of each id in ``wanted``; raise listing a few missing ids."""
    pos = {str(c): i for i, c in enumerate(available)}
    missing = [str(c) for c in wanted if str(c) not in pos]
    if missing:
        raise DataError(
            f"{what} lack {len(missing)} of the {len(wanted)} {source} (e.g. {', '.join(missing[:5])}); "
            f"{what} have {len(pos)} clip ids (e.g. {', '.join(list(pos)[:3])}). "
            "Compute the embeddings for the same stimuli as the fMRI data."
        )
    return np.array([pos[str(c)] for c in wanted], dtype=int)
