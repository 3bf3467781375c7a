"""Primal ridge with one penalty per target chosen by grouped CV, from one Gram matrix and moments.

For ``n_features = k <= n_samples`` (parcels, selected voxels, Nyström features, encoding models with
thousands of voxels as targets). Each CV fold is the ridge with an unpenalised intercept fitted on its
training samples (X and Y centred with the training fold's means), exactly as himalaya's
``RidgeCV(fit_intercept=True)`` and as scikit-learn's ``Ridge`` refitted per fold.

Cost. One float64 Gram ``X^T X`` of the (globally centred) features; every fold's training Gram is the full
Gram minus its test block, centred by a rank-one update; one ``k x k`` eigendecomposition per fold. The
targets enter only through ``X^T Y`` blocks (``2 n k t`` in all). For each penalty the fold's CV correlation
of every target follows from moments, without forming predictions: with the fold's eigenbasis ``V``,
``q = V^T X_tr^T y_tr`` and ``d = 1 / (sigma + alpha)``,

    sum_test (y - ybar) yhat = (d * q) . (V^T X_te^T (y_te - ybar_te)),   sum_test (yhat - mean)^2 = |F (d * q)|^2

where ``F`` (``min(n_test, k) x k``) is a square root of the test features' scatter in that basis. So a
penalty costs ``2 min(n_test, k) k t`` per fold, and nothing scales with ``n_samples * n_alphas * t``.
Precision: the Gram, the eigendecompositions and the once-per-fold moments (``X^T Y`` blocks, ``q``, the
test cross-scatter) are float64 on the host, because a fold with fewer training samples than features has
exact null directions whose ``q`` must stay 0 (float32 rounding there, amplified by ``1 / alpha``, would
reach the test predictions); the per-penalty loop, the only part repeated ``n_alphas`` times, is float32
on the backend.
"""

from __future__ import annotations

import functools

import numpy as np

from brain2music.models import _backend as B
from brain2music.models._dual import select_update

#: Floats allowed in one (alphas x rows x targets) block of the moment computation.
_BLOCK_FLOATS = 2**24


#: From this many features on, the folds run concurrently (their eigendecompositions dominate).
_PARALLEL_FOLDS = 128


def ridge_cv_primal(*args, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """See :func:`_ridge_cv_primal`. Below 2,048 features BLAS runs on one thread
    (:func:`brain2music.models._backend.lapack_threads`: OpenBLAS's threads cost far more than they save
    on thin matrices, and on a busy machine they made small fits 10-20x slower); from 128 features on the
    folds run concurrently instead, one per BLAS thread the process may use."""
    X = args[0] if args else kwargs["X"]
    k = np.shape(X)[1]
    b = B.get_backend(kwargs.get("backend", "numpy"))
    workers = B.cpu_workers(b) if _PARALLEL_FOLDS <= k < B.SMALL_LAPACK else 1
    with B.lapack_threads(k) if workers == 1 else B.single_thread(b):
        return _ridge_cv_primal(*args, workers=workers, **kwargs)


class _Fold:
    """Target-independent algebra of one fold: eigenbasis of the centred training Gram, test scatter root."""

    def __init__(self, b, Xc: np.ndarray, G: np.ndarray, test: np.ndarray):
        n = Xc.shape[0]
        self.test = test
        self.n_te, self.n_tr = test.size, n - test.size
        Xte = Xc[test]
        self.s_te = Xte.sum(axis=0)  # the training sum is -s_te: Xc is centred
        G_te = Xte.T @ Xte
        x_tr = -self.s_te / self.n_tr
        sigma, V = np.linalg.eigh(G - G_te - self.n_tr * np.outer(x_tr, x_tr))
        self.sigma = np.clip(sigma, 0.0, None)
        Xte_c = Xte - self.s_te / self.n_te
        if self.n_te < Xc.shape[1]:
            F = Xte_c @ V
        else:
            lam, U = np.linalg.eigh(V.T @ (Xte_c.T @ Xte_c) @ V)
            F = np.sqrt(np.clip(lam, 0.0, None))[:, None] * U.T
        self.V = V
        self.F = B.asarray(b, F)


def _ridge_cv_primal(
    X: np.ndarray,
    Y: np.ndarray,
    alphas: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    *,
    n_targets_batch: int | None = None,
    backend: str = "numpy",
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-target ridge penalty by grouped CV (Pearson r, folds centred with their training means), then
    the refit on all samples.

    Parameters
    ----------
    X : (n_samples, n_features); Y : (n_samples, n_targets) (any offsets: both are centred here).
    alphas : (n_alphas,) penalties; splits : (train, test) index pairs, train = the samples outside test.
    n_targets_batch : targets handled at once (memory); backend : see :mod:`brain2music.models._backend`.
    workers : threads over which the folds are spread.

    Returns
    -------
    coef : (n_features, n_targets) float32 for centred X (intercept = mean(Y) - mean(X) @ coef),
    best_alphas : (n_targets,), cv_scores : (n_targets,) fold-mean correlation at the chosen penalty.
    """
    b = B.get_backend(backend)
    X = np.asarray(X)
    alphas = np.asarray(alphas, dtype=np.float64)
    Xc = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
    G = Xc.T @ Xc
    pool = None
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(min(workers, len(splits) + 1))
    mapper = pool.map if pool is not None else map
    try:
        return _solve(b, Xc, G, Y, alphas, splits, n_targets_batch, mapper)
    finally:
        if pool is not None:
            pool.shutdown()


def _solve(b, Xc, G, Y, alphas, splits, n_targets_batch, mapper):
    """:func:`_ridge_cv_primal` after centring; ``mapper`` runs the per-fold work (``map`` or a thread pool)."""
    t = np.shape(Y)[1]
    # The full Gram's eigendecomposition (for the refit) is one more task beside the folds'.
    *folds, (sigma_all, V_all) = mapper(
        lambda test: np.linalg.eigh(G) if test is None else _Fold(b, Xc, G, np.asarray(test)),
        [test for _, test in splits] + [None],
    )
    sigma_all = np.clip(sigma_all, 0.0, None)
    batch = t if not n_targets_batch else int(n_targets_batch)
    coef = np.empty((Xc.shape[1], t), dtype=np.float32)
    best_alphas = np.empty(t)
    cv_scores = np.empty(t)
    for start in range(0, t, batch):
        cols = slice(start, min(start + batch, t))
        Yb = np.asarray(Y[:, cols], dtype=np.float64)
        Yb -= Yb.mean(axis=0)
        XtY = Xc.T @ Yb
        per_fold = mapper(functools.partial(_fold_scores, b, Xc=Xc, XtY=XtY, Yb=Yb, alphas=alphas), folds)
        scores = sum(per_fold) / len(folds)  # summed in fold order whatever the threads
        best = np.full(Yb.shape[1], -np.inf)
        idx = np.zeros(Yb.shape[1], dtype=int)
        for a, alpha in enumerate(alphas):
            idx[select_update(scores[a], alpha, best)] = a
        best_alphas[cols] = alphas[idx]
        cv_scores[cols] = scores[idx, np.arange(idx.size)]
        # Refit on all samples, each target at its own penalty: W = V diag(1 / (sigma + alpha_t)) V^T X^T y.
        coef[:, cols] = V_all @ ((V_all.T @ XtY) / (sigma_all[:, None] + alphas[idx][None, :]))
    return coef, best_alphas, cv_scores


def _fold_scores(
    b, fold: _Fold, *, Xc: np.ndarray, XtY: np.ndarray, Yb: np.ndarray, alphas: np.ndarray
) -> np.ndarray:
    """CV correlation of every target of ``Yb`` at every penalty for one fold → ``(n_alphas, n_targets)``."""
    Xte, Yte = Xc[fold.test], Yb[fold.test]
    sy_te = Yte.sum(axis=0)
    XtY_te = Xte.T @ Yte
    # V^T times the training cross-scatter (about the training means) and the test cross-scatter.
    Q = fold.V.T @ (XtY - XtY_te - np.outer(fold.s_te, sy_te) / fold.n_tr)
    P = B.asarray(b, fold.V.T @ (XtY_te - np.outer(fold.s_te, sy_te) / fold.n_te))
    yc = Yte - sy_te / fold.n_te
    var_y = (yc * yc).sum(axis=0)
    Q = B.asarray(b, Q)
    out = np.empty((len(alphas), Yb.shape[1]))
    m, k = fold.F.shape
    step = max(1, _BLOCK_FLOATS // max(1, (m + k) * Yb.shape[1]))
    for a0 in range(0, len(alphas), step):
        d = B.asarray(b, 1.0 / (fold.sigma[None, :] + alphas[a0 : a0 + step, None]))  # (n_a, k)
        DQ = d[:, :, None] * Q[None]  # (n_a, k, t)
        num = B.to_numpy((DQ * P[None]).sum(1)).astype(np.float64)
        Z = fold.F[None] @ DQ
        var_p = B.to_numpy((Z * Z).sum(1)).astype(np.float64)
        den = np.sqrt(var_p * var_y[None, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a0 : a0 + step] = np.where(den > 0, num / den, 0.0)
    return out
