"""Parameter checks shared by every stage: 2-D arrays, "must be one of" choices and unknown options
(errors name the argument)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from brain2music.errors import ConfigError, DataError


def check_choice(value, choices: Iterable, *, what: str, error: type[Exception] = ConfigError):
    """``value`` if it is one of ``choices``, else ``error`` (default :class:`ConfigError`) saying
    ``"<what> must be one of <choices>; got <value>"``."""
    choices = tuple(choices)
    if value not in choices:
        raise error(f"{what} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_known_options(options: dict, known, *, what: str) -> None:
    """ConfigError naming every key of ``options`` that is not in ``known`` (a typo is never ignored)."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"{what}: unknown option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known))}"
        )


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
    if finite:
        # Column chunks: a full-size boolean temporary (4,800 x 60,000) would cost 290 MB for a yes/no answer.
        for cols in column_chunks(array):
            if not np.isfinite(array[:, cols]).all():
                bad = np.flatnonzero(~np.isfinite(array).all(axis=0))
                raise DataError(
                    f"{name} has NaN or infinite values in columns {bad[:5].tolist()} (of {bad.size})"
                )
    return array


def column_chunks(array: np.ndarray, floats: int = 2**23) -> list[slice]:
    """Column slices of a 2-D ``array`` holding about ``floats`` elements each (bounds temporaries)."""
    n_rows, n_cols = array.shape
    step = max(1, floats // max(1, n_rows))
    return [slice(start, start + step) for start in range(0, n_cols, step)]
