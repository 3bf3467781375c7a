"""The thin-SVD primal ridge CV against himalaya's RidgeCV and scikit-learn's Ridge."""

from __future__ import annotations

import numpy as np
from himalaya.ridge import RidgeCV
from himalaya.scoring import correlation_score
from sklearn.linear_model import Ridge

from brain2music.models._primal import ridge_cv_primal
from brain2music.models.ridge import DEFAULT_ALPHAS, RidgeDecoder, grouped_splits


def _data(n=600, p=12, t=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    # Targets of very different signal-to-noise need very different penalties.
    Y = X @ rng.normal(size=(p, t)) * np.logspace(-1.5, 0.5, t) + rng.normal(size=(n, t)) * 2.0
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return X.astype(np.float32), Y.astype(np.float32), np.repeat(np.arange(6), n // 6)


def test_same_cv_scores_and_predictions_as_himalaya():
    X, Y, groups = _data()
    splits = grouped_splits(groups, 5)
    ref = RidgeCV(
        alphas=DEFAULT_ALPHAS, cv=splits, solver_params={"score_func": correlation_score}, fit_intercept=True
    ).fit(X, Y)
    coef, best, scores = ridge_cv_primal(X, Y, DEFAULT_ALPHAS, splits)
    np.testing.assert_allclose(scores, np.asarray(ref.cv_scores_).ravel(), atol=1e-5)
    # Where scores tie to float precision the chosen penalty may differ; the predictions barely do.
    np.testing.assert_allclose(X @ coef, X @ np.asarray(ref.coef_), atol=2e-2 * np.abs(Y).max())
    assert len(np.unique(best)) > 1  # per-target choice really happened


def test_refit_equals_sklearn_ridge_at_the_chosen_penalty():
    X, Y, groups = _data(seed=1)
    dec = RidgeDecoder(cv=5).fit(X + 3.0, Y + 1.0, groups)
    assert dec.form_ == "primal"
    for j in range(Y.shape[1]):
        sk = Ridge(alpha=dec.best_alphas_[j]).fit(X + 3.0, Y[:, j] + 1.0)
        np.testing.assert_allclose(dec.coef_[:, j], sk.coef_, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(dec.intercept_[j], sk.intercept_, rtol=1e-4, atol=1e-4)
