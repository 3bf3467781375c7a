"""Ridge decoders with a penalty per target chosen by grouped cross-validation (on himalaya).

himalaya does not switch between the primal and the kernel (dual) form by itself, so :class:`RidgeDecoder`
does: with fewer samples than features (e.g. 4,800 window samples × 60,000 voxels) it solves the dual
problem with ``KernelRidgeCV`` (an ``n_samples × n_samples`` kernel) and converts the dual coefficients back to
primal weights, otherwise it solves the primal problem with thin SVDs per fold (:mod:`brain2music.models._primal`; same
selection rule as himalaya's ``RidgeCV``, which forms ``n_test × n_train`` hat matrices and is far slower
when samples outnumber features). Both give the same predictions as
scikit-learn's ``Ridge(alpha, fit_intercept=True)`` at the selected penalty: X and Y are centred here and the
intercept is ``mean(Y) - mean(X) @ W``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupKFold

from brain2music.errors import ConfigError, DataError
from brain2music.models._checks import check_2d, check_groups, check_not_constant, check_same_samples
from brain2music.models._primal import ridge_cv_primal
from brain2music.models.scoring import correlation_per_target

__all__ = ["DEFAULT_ALPHAS", "RidgeDecoder", "grouped_splits", "correlation_per_target"]

#: 20 penalties, log-spaced over the range Brain2Music's peers searched (1e-2 .. 1e5).
DEFAULT_ALPHAS = np.logspace(-2, 5, 20)

_SOLVERS = ("auto", "primal", "dual")
_KERNELS = ("linear", "rbf")


def grouped_splits(groups: np.ndarray, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` (train, test) index pairs of a K-fold that keeps every group (run) in one fold."""
    groups = np.asarray(groups)
    dummy = np.zeros((groups.size, 1))
    return list(GroupKFold(n_splits=n_splits).split(dummy, groups=groups))


class _Selection:
    """The penalty choice of a CV fit (the attributes RidgeDecoder copies from himalaya's models)."""

    def __init__(self, best_alphas, cv_scores):
        self.best_alphas_ = best_alphas
        self.cv_scores_ = cv_scores


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
        ``"rbf"`` gives the nonlinear decoder (himalaya ``KernelRidgeCV(kernel="rbf")``).
    gamma : float or None
        RBF width; ``None`` uses ``1 / n_features`` (z-scored features → squared distances ~ 2 n_features).
    solver : {"auto", "primal", "dual"}
        For the linear kernel: ``"auto"`` picks the dual (kernel) form when n_samples < n_features.
    n_targets_batch : int or None
        Targets solved at once (bounds memory with many targets, e.g. encoding models).
    max_exact_samples : int or None
        RBF only: above this many samples the exact kernel (an eigendecomposition of an
        ``n_samples × n_samples`` matrix per fold, O(n³)) is replaced by a Nyström approximation with
        ``n_components`` landmarks followed by primal ridge. ``None`` always solves exactly.
    n_components : int
        Nyström landmarks (RBF only).
    check_constant : bool
        Raise :class:`DataError` when a feature or target column is constant.

    Attributes
    ----------
    coef_ : ndarray (n_features, n_targets)  (linear kernel only)
    intercept_ : ndarray (n_targets,)
    best_alphas_ : ndarray (n_targets,)
    cv_scores_ : ndarray (n_targets,)  mean CV Pearson r at the chosen penalty
    form_ : "primal" | "dual" | "rbf" | "rbf-nystroem"
    n_features_in_ : int
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

    def _validate_params(self):
        if self.kernel not in _KERNELS:
            raise ConfigError(f"kernel must be one of {_KERNELS}; got {self.kernel!r}")
        if self.solver not in _SOLVERS:
            raise ConfigError(f"solver must be one of {_SOLVERS}; got {self.solver!r}")
        alphas = np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
        if alphas.ndim != 1 or alphas.size == 0 or np.any(alphas <= 0) or not np.isfinite(alphas).all():
            raise ConfigError(f"alphas must be a non-empty list of positive numbers; got {self.alphas!r}")
        if not isinstance(self.cv, (int, np.integer)) or self.cv < 2:
            raise ConfigError(f"cv must be an integer >= 2 (number of grouped folds); got {self.cv!r}")
        return alphas

    def fit(self, X, Y, groups=None) -> RidgeDecoder:
        """Fit on ``X (n_samples, n_features)`` → ``Y (n_samples, n_targets)``; ``groups`` = run per sample."""
        from himalaya.kernel_ridge import KernelRidgeCV
        from himalaya.scoring import correlation_score

        alphas = self._validate_params()
        X = check_2d(X, "X")
        Y = check_2d(Y, "Y")
        check_same_samples(X, Y)
        if self.check_constant:
            check_not_constant(X, "X", "feature (voxel)")
            check_not_constant(Y, "Y", "target dimension")
        groups = check_groups(groups, X.shape[0], int(self.cv))
        n_samples, n_features = X.shape
        self.n_features_in_ = n_features
        self.x_mean_ = X.mean(axis=0)
        self.y_mean_ = Y.mean(axis=0)
        Xc = X - self.x_mean_
        Yc = Y - self.y_mean_
        splits = grouped_splits(groups, int(self.cv))
        params = {"score_func": correlation_score, "n_targets_batch": self.n_targets_batch}
        self.nystroem_ = None
        if self.kernel == "rbf" and self.max_exact_samples is not None and n_samples > self.max_exact_samples:
            from sklearn.kernel_approximation import Nystroem

            gamma = 1.0 / n_features if self.gamma is None else float(self.gamma)
            self.nystroem_ = Nystroem(
                kernel="rbf", gamma=gamma, n_components=min(int(self.n_components), n_samples), random_state=0
            ).fit(X)
            Z = self.nystroem_.transform(X).astype(np.float32)
            self.z_mean_ = Z.mean(axis=0)
            z_coef, best_alphas, cv_scores = ridge_cv_primal(
                Z - self.z_mean_, Yc, alphas, splits, n_targets_batch=self.n_targets_batch
            )
            model = _Selection(best_alphas, cv_scores)
            self.form_ = "rbf-nystroem"
            self.gamma_ = gamma
            self.model_ = None
            self.coef_ = None
            self.z_coef_ = z_coef
        elif self.kernel == "rbf":
            gamma = 1.0 / n_features if self.gamma is None else float(self.gamma)
            model = KernelRidgeCV(
                alphas=alphas, kernel="rbf", kernel_params={"gamma": gamma}, cv=splits, solver_params=params,
                fit_intercept=True,  # each CV fold centred with its training means (kernel and targets)
            )  # fmt: skip
            model.fit(Xc, Yc)
            self.form_ = "rbf"
            self.gamma_ = gamma
            self.model_ = model
            self.coef_ = None
        else:
            form = self.solver
            if form == "auto":
                form = "dual" if n_samples < n_features else "primal"
            if form == "dual":
                # fit_intercept: himalaya centres each fold's kernel and targets with the fold's training means.
                model = KernelRidgeCV(
                    alphas=alphas,
                    kernel="linear",
                    cv=splits,
                    solver_params=params,
                    warn=False,
                    fit_intercept=True,
                )
                model.fit(Xc, Yc)
                # Primal weights W = X^T A make the saved model independent of the training data.
                self.coef_ = (Xc.T @ np.asarray(model.dual_coef_, dtype=np.float32)).astype(np.float32)
            else:
                # himalaya's RidgeCV builds n_test × n_train hat matrices per fold and penalty, which
                # dominates when samples outnumber features; the thin-SVD solver selects identically.
                self.coef_, best_alphas, cv_scores = ridge_cv_primal(
                    Xc, Yc, alphas, splits, n_targets_batch=self.n_targets_batch
                )
                model = _Selection(best_alphas, cv_scores)
            self.form_ = form
            self.model_ = None
        self.best_alphas_ = np.asarray(model.best_alphas_, dtype=np.float64)
        self.cv_scores_ = np.asarray(model.cv_scores_, dtype=np.float64)
        self.n_targets_ = Y.shape[1]
        if self.coef_ is not None:
            self.intercept_ = (self.y_mean_ - self.x_mean_ @ self.coef_).astype(np.float32)
        else:
            self.intercept_ = self.y_mean_.astype(np.float32)
        return self

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
            Z = self.nystroem_.transform(X).astype(np.float32) - self.z_mean_
            return (Z @ self.z_coef_ + self.intercept_).astype(np.float32)
        pred = np.asarray(self.model_.predict(X - self.x_mean_), dtype=np.float32)
        return pred + self.intercept_

    def score(self, X, Y) -> float:
        """Mean Pearson r over targets between ``predict(X)`` and ``Y``."""
        return float(np.mean(correlation_per_target(check_2d(Y, "Y"), self.predict(X))))
