"""Ridge decoders with a penalty per target chosen by grouped cross-validation.

:class:`RidgeDecoder` picks the form: with fewer samples than features (e.g. 4,800 window samples × 60,000
voxels) the kernel (dual) form (:mod:`brain2music.models._dual`: one centred kernel, one Cholesky inverse per
penalty serving every fold and target, the refit included), otherwise the primal form
(:mod:`brain2music.models._primal`: one Gram matrix, an eigendecomposition per fold, CV scores from moments).
Every CV fold is the ridge with an unpenalised intercept fitted on its training samples (X and Y centred with
the training fold's means), and the selection rule is himalaya's (fold-mean Pearson r, ties to the larger
penalty), so the penalties and predictions are those of himalaya ``KernelRidgeCV`` / ``RidgeCV`` with
``fit_intercept=True`` and of scikit-learn's ``Ridge(alpha, fit_intercept=True)`` refitted at the selected
penalty, up to float32 rounding. ``backend`` runs the solvers on a himalaya backend (GPU with
``torch_cuda`` / ``cupy``); fitted attributes stay numpy.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupKFold

from brain2music._checks import check_choice
from brain2music.errors import ConfigError, DataError
from brain2music.models._checks import check_2d, check_groups, check_not_constant, check_same_samples
from brain2music.models._dual import DualCV, centered_linear_kernel, double_center
from brain2music.models._primal import ridge_cv_primal
from brain2music.models.scoring import correlation_per_target

__all__ = ["DEFAULT_ALPHAS", "RIDGE_SOLVERS", "RidgeDecoder", "grouped_splits", "correlation_per_target"]

#: 20 penalties, log-spaced over the range Brain2Music's peers searched (1e-2 .. 1e5).
DEFAULT_ALPHAS = np.logspace(-2, 5, 20)

#: Every fitting form of :class:`RidgeDecoder` (himalaya's ``RIDGE_SOLVERS`` style): the form of
#: :meth:`RidgeDecoder.form_for` -> the method that fits ``(X, Y, alphas, splits)`` in it and returns
#: ``(best_alphas, cv_scores)``. ``solver=`` picks among the linear forms; ``kernel="rbf"`` the others.
RIDGE_SOLVERS = {
    "primal": "_fit_primal",
    "dual": "_fit_dual",
    "rbf": "_fit_rbf",
    "rbf-nystroem": "_fit_nystroem",
}
_SOLVERS = ("auto", "primal", "dual")
_KERNELS = ("linear", "rbf")


def grouped_splits(groups: np.ndarray, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` (train, test) index pairs of a K-fold that keeps every group (run) in one fold."""
    groups = np.asarray(groups)
    dummy = np.zeros((groups.size, 1))
    return list(GroupKFold(n_splits=n_splits).split(dummy, groups=groups))


def _rbf(b, A: np.ndarray, C: np.ndarray, gamma: float):
    """RBF kernel ``exp(-gamma |a_i - c_j|^2)`` ``(n_a, n_c)`` on backend ``b`` (float32)."""
    if b.name == "numpy":
        from sklearn.metrics.pairwise import rbf_kernel

        return rbf_kernel(A, C, gamma=gamma).astype(np.float32)
    from brain2music.models import _backend as B

    Ad, Cd = B.asarray(b, A), B.asarray(b, C)
    sq = (Ad * Ad).sum(1)[:, None] + (Cd * Cd).sum(1)[None, :] - 2.0 * (Ad @ Cd.T)
    return b.exp(-gamma * b.clip(sq, 0, None))


class RidgeDecoder(BaseEstimator):
    """Ridge (or RBF kernel ridge) regression ``Y ≈ X W + b`` with one penalty per target.

    The penalty of each target column is the one with the best mean cross-validated Pearson correlation
    over ``cv`` folds that keep each group (run) in a single fold, then the model is refitted on all
    samples.

    Parameters
    ----------
    alphas : array of shape (n_alphas,)
        Penalties to try (default: 20 values from 1e-2 to 1e5).
    cv : int
        Number of grouped folds.
    kernel : {"linear", "rbf"}
        ``"rbf"`` gives the nonlinear decoder (as himalaya ``KernelRidgeCV(kernel="rbf", fit_intercept=True)``).
    gamma : float or None
        RBF width; ``None`` uses ``1 / n_features`` (z-scored features → squared distances ~ 2 n_features).
    solver : {"auto", "primal", "dual"}
        For the linear kernel: ``"auto"`` picks the dual (kernel) form when n_samples < n_features.
    n_targets_batch : int or None
        Targets solved at once (bounds memory with many targets, e.g. encoding models).
    max_exact_samples : int or None
        RBF only: above this many samples the exact kernel (an ``n_samples × n_samples`` Cholesky inverse
        per penalty, O(n³)) is replaced by a Nyström approximation with
        ``n_components`` landmarks followed by primal ridge. ``None`` always solves exactly.
    n_components : int
        Nyström landmarks (RBF only).
    check_constant : bool
        Raise :class:`DataError` when a feature or target column is constant.
    backend : {"numpy", "torch", "torch_cuda", "cupy"}
        himalaya backend the solver runs on (float32 on its device); fitted attributes are numpy.

    Attributes
    ----------
    coef_ : ndarray (n_features, n_targets)  (linear kernel only)
    intercept_ : ndarray (n_targets,)
    best_alphas_ : ndarray (n_targets,)
    cv_scores_ : ndarray (n_targets,)  mean CV Pearson r at the chosen penalty
    form_ : "primal" | "dual" | "rbf" | "rbf-nystroem"
    n_features_in_ : int
    x_mean_, y_mean_ : ndarray, training means of X and Y
    """

    def __init__(
        self,
        alphas=DEFAULT_ALPHAS,
        *,
        cv: int = 5,
        kernel: str = "linear",
        gamma: float | None = None,
        solver: str = "auto",
        n_targets_batch: int | None = None,
        max_exact_samples: int | None = 2000,
        n_components: int = 1000,
        check_constant: bool = True,
        backend: str = "numpy",
    ):
        self.alphas = alphas
        self.cv = cv
        self.kernel = kernel
        self.gamma = gamma
        self.solver = solver
        self.n_targets_batch = n_targets_batch
        self.max_exact_samples = max_exact_samples
        self.n_components = n_components
        self.check_constant = check_constant
        self.backend = backend

    def _validate_params(self):
        check_choice(self.kernel, _KERNELS, what="kernel")
        check_choice(self.solver, _SOLVERS, what="solver")
        alphas = np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
        if alphas.ndim != 1 or alphas.size == 0 or np.any(alphas <= 0) or not np.isfinite(alphas).all():
            raise ConfigError(f"alphas must be a non-empty list of positive numbers; got {self.alphas!r}")
        from brain2music.models._backend import get_backend

        get_backend(self.backend)  # a clear ConfigError now rather than deep inside the solver
        if not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise ConfigError(f"cv must be an integer >= 2 (number of grouped folds); got {self.cv!r}")
        return alphas

    def fit(self, X, Y, groups=None, *, kernel=None) -> RidgeDecoder:
        """Fit on ``X (n_samples, n_features)`` → ``Y (n_samples, n_targets)``; ``groups`` = run per sample.

        ``kernel``: a :class:`~brain2music.models.KernelView` of exactly these samples (linear dual form
        only), so the ``X X^T`` of a subject is computed once for all its fits.
        """
        alphas = np.sort(self._validate_params())
        X = check_2d(X, "X")
        Y = check_2d(Y, "Y")
        check_same_samples(X, Y)
        if self.check_constant:
            check_not_constant(X, "X", "feature (voxel)")
            check_not_constant(Y, "Y", "target dimension")
        groups = check_groups(groups, X.shape[0], int(self.cv))
        n_samples, n_features = X.shape
        self.n_features_in_ = n_features
        self.x_mean_ = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.y_mean_ = Y.mean(axis=0, dtype=np.float64).astype(np.float32)
        splits = grouped_splits(groups, int(self.cv))
        self.coef_ = None
        self.nystroem_ = None
        form = self.form_for(n_samples, n_features)
        if kernel is not None and form != "dual":
            raise ConfigError(
                f"a precomputed kernel serves the linear dual form only; this fit uses {form!r}"
            )
        solve = getattr(self, RIDGE_SOLVERS[form])
        best_alphas, cv_scores = solve(X, Y, alphas, splits, **({"kernel": kernel} if form == "dual" else {}))
        self.form_ = form
        self.best_alphas_ = np.asarray(best_alphas, dtype=np.float64)
        self.cv_scores_ = np.asarray(cv_scores, dtype=np.float64)
        self.n_targets_ = Y.shape[1]
        if self.coef_ is not None:
            self.intercept_ = (self.y_mean_ - self.x_mean_ @ self.coef_).astype(np.float32)
        else:
            self.intercept_ = self.y_mean_.astype(np.float32)
        return self

    def form_for(self, n_samples: int, n_features: int) -> str:
        """The form a fit on ``(n_samples, n_features)`` would use: ``primal``, ``dual``, ``rbf`` or
        ``rbf-nystroem`` (a precomputed ``kernel=`` serves ``dual`` only)."""
        if self.kernel == "rbf":
            if self.max_exact_samples is not None and n_samples > self.max_exact_samples:
                return "rbf-nystroem"
            return "rbf"
        if self.solver == "auto":
            return "dual" if n_samples < n_features else "primal"
        return self.solver

    def _gamma(self, n_features: int) -> float:
        return 1.0 / n_features if self.gamma is None else float(self.gamma)

    def _fit_primal(self, X, Y, alphas, splits):
        """Linear primal form: the thin-SVD leave-group-out CV of :mod:`._primal`."""
        self.coef_, best_alphas, cv_scores = ridge_cv_primal(
            X, Y, alphas, splits, n_targets_batch=self.n_targets_batch, backend=self.backend
        )
        return best_alphas, cv_scores

    def _fit_dual(self, X, Y, alphas, splits, kernel):
        """Linear kernel form: one centred kernel, the leave-group-out CV (:mod:`._dual`), W = X_c^T A."""
        from brain2music.models import _backend as B

        if kernel is not None:
            if kernel.backend != self.backend:
                raise ConfigError(
                    f"the kernel view was computed on backend {kernel.backend!r}; this decoder uses {self.backend!r}"
                )
            kernel.check(X, self.x_mean_)
            solver = kernel.cv(splits, alphas)
        else:
            b = B.get_backend(self.backend)
            K = centered_linear_kernel(b, X, self.x_mean_)
            solver = DualCV(b, K, splits, alphas)
            del K
        dual, best_alphas, cv_scores = solver.solve(Y, n_targets_batch=self.n_targets_batch)
        # Primal weights W = X_c^T A make the saved model independent of the training data (1^T A = 0 up to
        # rounding; the correction keeps W exact for the centred features).
        self.coef_ = (X.T @ dual - np.outer(self.x_mean_, dual.sum(axis=0))).astype(np.float32)
        return best_alphas, cv_scores

    def _fit_rbf(self, X, Y, alphas, splits):
        """Exact RBF kernel ridge, the kernel centred in feature space (an unpenalised intercept)."""
        from brain2music.models import _backend as B

        b = B.get_backend(self.backend)
        self.gamma_ = self._gamma(X.shape[1])
        K = _rbf(b, X, X, self.gamma_)
        self.k_col_mean_ = B.to_numpy(K.mean(0)).astype(np.float64)
        dual, best_alphas, cv_scores = DualCV(b, double_center(b, K), splits, alphas).solve(
            Y, n_targets_batch=self.n_targets_batch
        )
        self.X_fit_ = X.copy()
        self.dual_coef_ = dual
        return best_alphas, cv_scores

    def _fit_nystroem(self, X, Y, alphas, splits):
        from sklearn.kernel_approximation import Nystroem

        from brain2music.models import _backend as B

        self.gamma_ = self._gamma(X.shape[1])
        n_components = min(int(self.n_components), X.shape[0])
        with B.lapack_threads(n_components):  # the landmark kernel's SVD (see lapack_thread_count)
            self.nystroem_ = Nystroem(
                kernel="rbf", gamma=self.gamma_, n_components=n_components, random_state=0
            ).fit(X)
        Z = self.nystroem_.transform(X).astype(np.float32)
        self.z_mean_ = Z.mean(axis=0)
        self.z_coef_, best_alphas, cv_scores = ridge_cv_primal(
            Z, Y, alphas, splits, n_targets_batch=self.n_targets_batch, backend=self.backend
        )
        # The primal solver centres Z and Y itself; the intercept is mean(Y) - mean(Z) @ coef.
        self.z_intercept_ = (self.y_mean_ - self.z_mean_ @ self.z_coef_).astype(np.float32)
        return best_alphas, cv_scores

    def predict(self, X) -> np.ndarray:
        """Predict ``(n_samples, n_targets)`` from ``X (n_samples, n_features)``."""
        if not hasattr(self, "n_features_in_"):
            raise DataError("this RidgeDecoder is not fitted yet; call fit(X, Y, groups) first")
        X = check_2d(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features; the decoder was fitted on {self.n_features_in_}")
        if self.coef_ is not None:
            return (X @ self.coef_ + self.intercept_).astype(np.float32)
        if self.nystroem_ is not None:
            Z = self.nystroem_.transform(X).astype(np.float32)
            return (Z @ self.z_coef_ + self.z_intercept_).astype(np.float32)
        from brain2music.models import _backend as B

        # Feature-space centring of the new rows: k(x, x_i) - mean_j k(x, x_j) - mean_j k(x_j, x_i) + mean.
        Kx = B.to_numpy(_rbf(B.get_backend("numpy"), X, self.X_fit_, self.gamma_)).astype(np.float64)
        Kx = Kx - Kx.mean(axis=1, keepdims=True) - self.k_col_mean_[None, :] + self.k_col_mean_.mean()
        return (Kx @ self.dual_coef_ + self.intercept_).astype(np.float32)

    def score(self, X, Y) -> float:
        """Mean Pearson r over targets between ``predict(X)`` and ``Y``."""
        return float(np.mean(correlation_per_target(check_2d(Y, "Y"), self.predict(X))))
