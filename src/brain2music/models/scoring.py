"""Column-wise Pearson correlation, the score of every cross-validation and evaluation (himalaya's)."""

from __future__ import annotations

import numpy as np

__all__ = ["correlation_per_target"]


def correlation_per_target(Y_true: np.ndarray, Y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``Y_pred`` with the same column of ``Y_true`` → ``(n_targets,)``.

    himalaya's ``correlation_score`` (a constant column scores 0), computed on float64 NumPy arrays
    whatever himalaya backend is active.
    """
    from himalaya.backend import get_backend
    from himalaya.scoring import correlation_score

    backend = get_backend()
    r = correlation_score(np.asarray(Y_true, dtype=np.float64), np.asarray(Y_pred, dtype=np.float64))
    return np.asarray(backend.to_numpy(r), dtype=np.float64)
