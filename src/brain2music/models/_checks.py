"""Input checks shared by the decoders and encoding models (errors name the argument and what to fix)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from brain2music._checks import check_2d  # noqa: F401  (re-exported: the decoders' import path)
from brain2music.errors import DataError


def check_not_constant(array: np.ndarray, name: str, what: str) -> None:
    """Raise when a column of ``array`` is constant over samples (it has no signal to learn from)."""
    std = array.std(axis=0)
    const = np.flatnonzero(std <= 1e-8 * (1.0 + np.abs(array).max(axis=0)))
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
