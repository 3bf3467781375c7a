"""Primal ridge with one penalty per target chosen by cross-validation, via thin SVDs.

himalaya's ``RidgeCV`` (``solve_ridge_cv_svd``) forms, for every fold and penalty, the
``n_test × n_train`` hat matrix and multiplies it with the targets: O(n_alphas · n_test · n_train ·
n_targets), which dominates when samples outnumber features (e.g. a 13-voxel parcel with 2,400 window
samples: 8 s per fit). Here each fold costs one thin SVD of its training block and, per penalty, an
``n_test × k × n_targets`` product (k = rank ≤ n_features): the same selection rule (mean CV score over
folds, first best penalty; each fold centred with its training means) at a small fraction of the cost.
"""

from __future__ import annotations

import numpy as np

from brain2music.models.scoring import correlation_per_target


def _thin_svd(X: np.ndarray):
    U, s, Vt = np.linalg.svd(np.asarray(X, dtype=np.float64), full_matrices=False)
    keep = s > s.max(initial=0.0) * max(X.shape) * np.finfo(np.float64).eps
    return U[:, keep], s[keep], Vt[keep]


def ridge_cv_primal(*args, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """See :func:`_ridge_cv_primal`. Small problems run with one BLAS thread: OpenBLAS's threads cost far
    more than they save on thin matrices, and on a busy machine they made small fits 10-20x slower."""
    X = args[0] if args else kwargs["X"]
    if np.shape(X)[1] > 512:
        return _ridge_cv_primal(*args, **kwargs)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _ridge_cv_primal(*args, **kwargs)


def _ridge_cv_primal(
    X: np.ndarray,
    Y: np.ndarray,
    alphas: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    *,
    n_targets_batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-target ridge penalty by CV (Pearson r), then the refit on all samples.

    Parameters
    ----------
    X : (n_samples, n_features), centred; Y : (n_samples, n_targets), centred.
    alphas : (n_alphas,) penalties; splits : (train, test) index pairs.

    Returns
    -------
    coef : (n_features, n_targets) float32, best_alphas : (n_targets,), cv_scores : (n_targets,) — mean CV
    correlation at the chosen penalty.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float32)
    alphas = np.asarray(alphas, dtype=np.float64)
    n_targets = Y.shape[1]
    batch = n_targets if not n_targets_batch else int(n_targets_batch)
    scores = np.zeros((len(alphas), n_targets))
    for train, test in splits:
        # Centre with the training fold's own means (the fold model has an intercept, like the refit);
        # then U is orthogonal to the ones vector, so Y needs no centring for U^T Y.
        fold_mean = X[train].mean(axis=0)
        U, s, Vt = _thin_svd(X[train] - fold_mean)
        XteV = (X[test] - fold_mean) @ Vt.T  # (n_test, k)
        for start in range(0, n_targets, batch):
            cols = slice(start, start + batch)
            UtY = U.T @ Y[train][:, cols]  # (k, batch)
            Yte = Y[test][:, cols]
            for a, alpha in enumerate(alphas):
                pred = XteV @ ((s / (s * s + alpha))[:, None] * UtY)
                scores[a, cols] += correlation_per_target(Yte, pred)
    scores /= len(splits)
    best = np.argmax(scores, axis=0)
    U, s, Vt = _thin_svd(X)
    coef = np.empty((X.shape[1], n_targets), dtype=np.float32)
    for a in np.unique(best):
        cols = np.flatnonzero(best == a)
        UtY = U.T @ Y[:, cols]
        coef[:, cols] = Vt.T @ ((s / (s * s + alphas[a]))[:, None] * UtY)
    return coef, alphas[best], scores[best, np.arange(n_targets)]
