"""The one 2-D array check shared by the data layer and the models (errors name the argument)."""

from __future__ import annotations

import numpy as np

from brain2music.errors import DataError


def check_2d(
    array, name: str, *, dtype=np.float32, finite: bool = True, layout: str = "(n_samples, n_features)"
) -> np.ndarray:
    """Return ``array`` as a 2-D array or raise :class:`DataError` naming ``name`` and the ``layout``.

    A 1-D array named ``Y...`` becomes one column. ``dtype=None`` keeps the dtype; ``finite=False`` lets
    NaN through (the data layer finds and drops bad voxels itself).
    """
    array = np.asarray(array)
    if array.ndim == 1 and name.lower().startswith("y"):
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"{name} must be 2-D {layout}; got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{name} is empty: shape {array.shape}")
    if dtype is not None:
        array = np.asarray(array, dtype=dtype)
    if finite and not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array).all(axis=0))
        raise DataError(f"{name} has NaN or infinite values in columns {bad[:5].tolist()} (of {bad.size})")
    return array
