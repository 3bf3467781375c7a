"""Kernel (dual) ridge with a penalty per target chosen by grouped CV, from one kernel and no per-fold work.

The fold models have an unpenalised intercept (each training fold centred with its own means). For such a
linear smoother the held-out residuals of a fold follow from the fit on *all* samples (the leave-group-out
identity of penalised least squares with a fixed penalty):

    e_test = (I - H)_tt^{-1} [(I - H) y]_t,      I - H = alpha * G,   G = (K_c + alpha I)^{-1} - 11^T / (n alpha)

where ``K_c`` is the kernel centred with all samples' means and ``H`` the hat matrix of ridge with an
intercept. ``G y`` is at the same time the dual solution of the refit on all samples. So each penalty costs
one Cholesky factorisation and inverse of an ``n x n`` matrix (matrix-multiply bound, reused by every fold
and every target), one ``n x n x n_targets`` product and a small solve per fold; no fold kernel, no
eigendecomposition, no refit. To keep the factorisation well conditioned the constant direction, an exact
null vector of ``K_c``, is given the eigenvalue ``s = trace(K_c) / n``: ``(K_c + s/n 11^T + alpha I)^{-1}``
equals ``G + 11^T / (n (s + alpha))``.

Identical, up to float32 rounding, to himalaya ``KernelRidgeCV(fit_intercept=True)`` with the same folds and
``correlation_score`` (same selection rule: fold-mean score in float64, ties to the larger penalty; a
penalty whose matrix is not numerically positive definite in float32 is never chosen).
"""

from __future__ import annotations

import numpy as np

from brain2music.errors import DataError
from brain2music.models import _backend as B

#: Score given to a penalty that could not be factorised (as himalaya does for negative eigenvalues).
_UNUSABLE = -1e5


def check_partition(splits, n_samples: int) -> None:
    """The identity needs folds whose test sets partition the samples and whose train sets are the rest."""
    seen = np.zeros(n_samples, dtype=int)
    for train, test in splits:
        seen[np.asarray(test)] += 1
        if np.asarray(train).size + np.asarray(test).size != n_samples:
            raise DataError(
                "the kernel ridge CV needs folds whose training set is every sample outside the test set; "
                f"got a fold with {np.size(train)} training and {np.size(test)} test samples of {n_samples}"
            )
    if not (seen == 1).all():
        raise DataError(
            f"the CV test sets must cover every sample exactly once; {int((seen != 1).sum())} of {n_samples} "
            "samples are in no test set or in several"
        )


def select_update(mean_scores: np.ndarray, alpha: float, best: np.ndarray) -> np.ndarray:
    """Targets whose fold-mean score at ``alpha`` beats the best so far (himalaya's rule, alphas ascending:
    ``+ 1e-10 log(alpha)`` sends exact ties to the larger penalty)."""
    biased = mean_scores + 1e-10 * np.log(alpha)
    better = biased > best
    best[better] = biased[better]
    return better


def correlation_columns(b, y, p):
    """Pearson r of each column of ``p`` with the same column of ``y`` (0 when either is constant)."""
    y = y - y.mean(0)
    p = p - p.mean(0)
    num = (y * p).sum(0)
    den = b.sqrt((y * y).sum(0) * (p * p).sum(0))
    ok = den > 0
    r = num / (den + (~ok) * 1.0)
    return r * ok


def centered_linear_kernel(b, X: np.ndarray, x_mean: np.ndarray, *, chunk: int = 4096):
    """``(X - x_mean) (X - x_mean)^T`` in float32 on backend ``b`` (no centred copy of X is made).

    numpy: when the means are small against the spread (z-scored responses), one ``X @ X.T`` (BLAS syrk)
    centred afterwards in kernel space, which loses no precision then; otherwise the column chunks are
    centred one at a time and accumulated with syrk (peak extra memory: the kernel and one chunk).
    """
    n, p = X.shape
    if b.name == "numpy":
        rows = np.asarray(X[:: max(1, n // 64)], dtype=np.float64)
        spread = float(((rows - x_mean) ** 2).sum(axis=1).mean())
        if float(x_mean.astype(np.float64) @ x_mean) <= 1e-2 * spread:
            K = np.asarray(X, dtype=np.float32) @ np.asarray(X, dtype=np.float32).T
            m = (X @ x_mean).astype(np.float32)  # x_i . mean
            K -= m[:, None]
            K -= m[None, :]
            K += np.float32(x_mean.astype(np.float64) @ x_mean)
            return K
        from scipy.linalg import blas

        K = np.zeros((n, n), dtype=np.float32, order="F")
        for start in range(0, p, chunk):
            block = np.asarray(X[:, start : start + chunk], dtype=np.float32) - x_mean[start : start + chunk]
            # syrk on the transposed (Fortran-ordered) block: one triangle, no n x n temporary per chunk.
            blas.ssyrk(1.0, block.T, trans=1, beta=1.0, c=K, overwrite_c=1, lower=1)
        # Mirror the filled lower triangle; the transpose of a symmetric Fortran array is the same matrix in C order.
        return B._symmetrize_lower(K).T
    K = None
    for start in range(0, p, chunk):
        block = B.asarray(
            b, np.asarray(X[:, start : start + chunk], dtype=np.float32) - x_mean[start : start + chunk]
        )
        part = block @ block.T
        K = part if K is None else K + part
        del block, part
    return K


def double_center(b, K):
    """``C K C`` with ``C = I - 11^T/n``: the kernel of the features centred with these samples' means."""
    row = K.mean(0)
    return K - row[None, :] - row[:, None] + row.mean()


class DualCV:
    """Grouped-CV kernel ridge on a fixed centred kernel; per-penalty factors optionally kept for new targets.

    Parameters
    ----------
    b : backend module; K : (n, n) centred kernel on ``b`` (float32); splits : (train, test) index pairs whose
    test sets partition the samples; alphas : (n_alphas,) ascending penalties; keep : keep the factors.
    """

    def __init__(self, b, K, splits, alphas, *, keep: bool = False):
        n = K.shape[0]
        check_partition(splits, n)
        self.b, self.n, self.keep = b, n, keep
        self.alphas = np.asarray(alphas, dtype=np.float64)
        tests = [np.sort(np.asarray(t)) for _, t in splits]
        # Samples reordered fold by fold, so every fold's test block is a contiguous diagonal block.
        self.perm = np.concatenate(tests)
        self.bounds = np.cumsum([0] + [t.size for t in tests])
        self.Kp = B.take_block(b, K, self.perm)
        self.trace = float(B.to_numpy(self.Kp.diagonal().sum()))
        self._factors: dict[int, tuple] = {}

    def _factor(self, a: int):
        """``(M, G_tt per fold, c)`` for penalty ``a``: ``M = (K_c + s/n 11^T + alpha I)^{-1}``, ``G = M - c``.

        ``s = trace(K_c) / n``: the constant direction (an exact null vector of ``K_c``) gets a typical
        eigenvalue instead of 0, so small penalties factorise as well as the kernel allows; ``s / n`` added
        to every entry is small against the entries, so no precision is lost. ``c = 1 / (n (s + alpha))``.
        ``None`` for ``M`` when the matrix is not numerically positive definite in float32. Only the lower
        triangle of ``M`` is read (numpy's LAPACK inverse fills only that one).
        """
        if a in self._factors:
            return self._factors[a]
        b, alpha = self.b, float(self.alphas[a])
        shift = self.trace / self.n
        M = B.cholesky_inverse(b, B.shifted_copy(b, self.Kp, alpha, constant=shift / self.n))
        c = 1.0 / (self.n * (shift + alpha))
        folds = None
        if M is not None:
            folds = [B.sym_block(b, M, lo, hi) - c for lo, hi in zip(self.bounds[:-1], self.bounds[1:])]
        result = (M, folds, c)
        if self.keep:
            self._factors[a] = result
        return result

    def solve(self, Y: np.ndarray, *, n_targets_batch: int | None = None):
        """CV over penalties for targets ``Y (n, t)`` (samples in the kernel's order).

        Returns ``dual_coef (n, t)`` float32 numpy (refit on all samples at each target's best penalty, for
        the centred kernel), ``best_alphas (t,)``, ``cv_scores (t,)`` (fold-mean r at the chosen penalty).
        """
        n = self.n
        Y = np.asarray(Y, dtype=np.float32)
        t = Y.shape[1]
        Yp = Y[self.perm]
        Yp = Yp - Yp.mean(axis=0)
        dual, best_idx, scores = self._loop(Yp, t if not n_targets_batch else int(n_targets_batch))
        if (best_idx < 0).any():
            raise DataError(
                "kernel ridge: the kernel plus penalty is not positive definite in float32 at any of the "
                f"penalties {self.alphas.tolist()}; use larger penalties (alphas) or rescale the features"
            )
        inverse = np.empty(n, dtype=np.int64)
        inverse[self.perm] = np.arange(n)
        return dual[inverse], self.alphas[best_idx], scores[best_idx, np.arange(t)]

    def _penalty(self, a: int, Yp: np.ndarray, batch: int) -> list:
        """Everything one penalty contributes: ``[(fold_scores (n_folds, t_b), G Y or None)]`` per target batch."""
        b, n_folds = self.b, len(self.bounds) - 1
        M, folds, c = self._factor(a)
        out = []
        for start in range(0, Yp.shape[1], batch):
            Yb = B.asarray(b, Yp[:, start : start + batch])
            if M is None:
                out.append((np.full((n_folds, Yb.shape[1]), _UNUSABLE), None))
            else:
                out.append(self._fold_scores(M, folds, c, Yb))
        return out

    def _loop(self, Yp: np.ndarray, batch: int):
        """The penalties (one factorisation each, serving all folds and targets), merged in ascending order.

        CPU backends: penalties run concurrently, one per BLAS (torch: intra-op) thread the process may use,
        each single-threaded. Independent single-threaded factorisations use the cores without the threaded
        potrf/potri, whose synchronisation collapses when the machine has more runnable jobs than cores.
        """
        b = self.b
        t = Yp.shape[1]
        scores = np.full((len(self.alphas), t), _UNUSABLE)
        best = np.full(t, -np.inf)
        best_idx = np.full(t, -1)
        dual = np.zeros((self.n, t), dtype=np.float32)
        workers = min(B.cpu_workers(b), len(self.alphas))
        with B.single_thread(b):
            if workers > 1:
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(workers)
                results = pool.map(lambda a: self._penalty(a, Yp, batch), range(len(self.alphas)))
            else:
                pool = None
                results = (self._penalty(a, Yp, batch) for a in range(len(self.alphas)))
            try:
                for a, per_batch in enumerate(results):
                    for k, (fold_scores, GY) in enumerate(per_batch):
                        start = k * batch
                        cols = slice(start, start + fold_scores.shape[1])
                        mean = fold_scores.mean(axis=0)
                        scores[a, cols] = mean
                        better = select_update(mean, float(self.alphas[a]), best[cols])
                        if better.any() and GY is not None:
                            idx = np.flatnonzero(better)
                            dual[:, start + idx] = B.to_numpy(GY[:, B.index(b, idx)])
                            best_idx[start + idx] = a
            finally:
                if pool is not None:
                    pool.shutdown()
        return dual, best_idx, scores

    def _fold_scores(self, M, folds, c, Yb):
        """Fold CV scores ``(n_folds, t)`` and ``G Y`` (the refit's dual coefficients) at one penalty.

        The held-out prediction is computed as ``-G_tt^{-1} G_{t,train} y_train`` from the off-diagonal
        block (not as ``y_t - e_t``, which cancels in float32 when the penalty dwarfs the kernel).
        """
        b = self.b
        out = np.empty((len(folds), Yb.shape[1]))
        GY = b.zeros_like(Yb)
        total = Yb.sum(0)
        for f, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            y = Yb[lo:hi]
            # M[t, train] y_train from the lower triangle only: the rows of t left of the block, and the
            # columns of t below it (transposed); the diagonal block would multiply the zeroed test rows.
            off = M[lo:hi, :lo] @ Yb[:lo] + M[hi:, lo:hi].T @ Yb[hi:] - c * (total - y.sum(0))
            GY[lo:hi] = off + folds[f] @ y
            pred = B.cholesky_solve(b, b.copy(folds[f]), off)
            if pred is None:
                out[f] = _UNUSABLE
                continue
            out[f] = B.to_numpy(correlation_columns(b, y, -pred)).astype(np.float64)
        return out, GY
