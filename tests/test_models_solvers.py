"""The CV ridge solvers (dual leave-group-out, primal moments), shared kernels and backends.

References: himalaya's KernelRidgeCV / RidgeCV with ``fit_intercept=True`` (float64), scikit-learn's Ridge
refitted per fold, and the direct computation of every kernel a view derives.
"""

from __future__ import annotations

import numpy as np
import pytest
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import RidgeCV
from himalaya.scoring import correlation_score
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from brain2music.data.preprocess import window_average
from brain2music.errors import ConfigError, DataError
from brain2music.models import EncodingModel, RidgeDecoder, SubjectKernel, grouped_splits, permutation_test
from brain2music.models._dual import DualCV, centered_linear_kernel
from brain2music.models.encoding import _zscore_samples

ALPHAS = np.logspace(-2, 5, 20)


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _study(n_clips=96, n_trs=10, p=300, t=6, seed=0):
    """Responses per clip and TR with run offsets, and targets needing very different penalties."""
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(12), n_clips // 12)
    resp = rng.standard_normal((n_clips, n_trs, p)) + 0.7 * rng.standard_normal((12, 1, p))[runs] + 2.0
    W = rng.standard_normal((p, t)) / np.sqrt(p)
    Y = resp @ W * np.logspace(-1.5, 0.5, t) + rng.standard_normal((n_clips, n_trs, t)) + 4.0
    return resp.astype(np.float32), Y.astype(np.float32), runs


def _flat(a):
    return a.reshape(-1, a.shape[-1])


def _check_choice(ours, ref_per_alpha, alphas, tol=2e-5):
    """Each target's chosen penalty is optimal for the reference up to ``tol`` (CV curves flat to float32
    precision may be resolved either way), and equals the reference's choice where that one is clear."""
    idx = np.searchsorted(alphas, ours)
    n = ref_per_alpha.shape[1]
    best = ref_per_alpha.max(axis=0)
    assert (ref_per_alpha[idx, np.arange(n)] >= best - tol).all()
    top2 = np.sort(ref_per_alpha, axis=0)[-2:]
    clear = top2[1] - top2[0] > 10 * tol
    np.testing.assert_array_equal(idx[clear], ref_per_alpha.argmax(axis=0)[clear])
    assert len(np.unique(idx)) > 1  # the penalty really is chosen per target


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_dual_matches_himalaya_kernel_ridge_cv(kernel):
    resp, Y, runs = _study(n_clips=48, p=600)
    X, Yf, groups = _flat(resp), _flat(Y), np.repeat(runs, 10)
    splits = grouped_splits(groups, 5)
    params = {"gamma": 1.0 / X.shape[1]} if kernel == "rbf" else {}

    def himalaya(alphas):
        return KernelRidgeCV(
            alphas=alphas, kernel=kernel, kernel_params=params, cv=splits, fit_intercept=True, warn=False,
            solver_params={"score_func": correlation_score},
        ).fit(X.astype(np.float64), Yf.astype(np.float64))  # fmt: skip

    ref = himalaya(ALPHAS)
    per_alpha = np.array([np.asarray(himalaya(np.array([a])).cv_scores_).ravel() for a in ALPHAS])
    dec = RidgeDecoder(alphas=ALPHAS, kernel=kernel, solver="dual").fit(X, Yf, groups)
    assert dec.form_ == ("dual" if kernel == "linear" else "rbf")
    np.testing.assert_allclose(dec.cv_scores_, np.asarray(ref.cv_scores_).ravel(), atol=5e-5)
    _check_choice(dec.best_alphas_, per_alpha, ALPHAS)
    Xn = _flat(_study(n_clips=48, p=600, seed=1)[0][:8])
    same = np.isclose(dec.best_alphas_, np.asarray(ref.best_alphas_))
    expected = ref.predict(Xn.astype(np.float64))[:, same]
    np.testing.assert_allclose(dec.predict(Xn)[:, same], expected, atol=2e-4 * np.abs(expected).max())


def test_dual_cv_scores_equal_sklearn_ridge_refitted_per_fold():
    """Every penalty's fold score, not only the chosen ones (folds centred with their training means)."""
    resp, Y, runs = _study(n_clips=48, p=400, t=3)
    X, Yf, groups = _flat(resp), _flat(Y), np.repeat(runs, 10)
    splits = grouped_splits(groups, 4)
    alphas = [1e-2, 30.0, 1e4]
    for alpha in alphas:
        dec = RidgeDecoder(alphas=[alpha], cv=4).fit(X, Yf, groups)
        ref = []
        for train, test in splits:
            pred = (
                Ridge(alpha=alpha)
                .fit(X[train].astype(np.float64), Yf[train])
                .predict(X[test].astype(np.float64))
            )
            ref.append([np.corrcoef(pred[:, j], Yf[test, j])[0, 1] for j in range(3)])
        np.testing.assert_allclose(dec.cv_scores_, np.mean(ref, axis=0), atol=2e-5, err_msg=f"alpha {alpha}")


def test_primal_matches_himalaya_ridge_cv():
    resp, Y, runs = _study(p=40)
    X, Yf, groups = _flat(resp), _flat(Y), np.repeat(runs, 10)
    splits = grouped_splits(groups, 5)

    def himalaya(alphas):
        return RidgeCV(
            alphas=alphas, cv=splits, fit_intercept=True, solver_params={"score_func": correlation_score}
        ).fit(X.astype(np.float64), Yf.astype(np.float64))

    ref = himalaya(ALPHAS)
    per_alpha = np.array([np.asarray(himalaya(np.array([a])).cv_scores_).ravel() for a in ALPHAS])
    dec = RidgeDecoder(alphas=ALPHAS).fit(X, Yf, groups)
    assert dec.form_ == "primal"
    np.testing.assert_allclose(dec.cv_scores_, np.asarray(ref.cv_scores_).ravel(), atol=1e-5)
    _check_choice(dec.best_alphas_, per_alpha, ALPHAS, tol=1e-5)
    same = np.isclose(dec.best_alphas_, np.asarray(ref.best_alphas_))
    expected = ref.predict(X[:50].astype(np.float64))[:, same]
    np.testing.assert_allclose(dec.predict(X[:50])[:, same], expected, atol=1e-4 * np.abs(expected).max())


def test_forms_agree_when_both_apply():
    resp, Y, runs = _study(n_clips=48, p=200)
    X, Yf, groups = _flat(resp), _flat(Y), np.repeat(runs, 10)
    a = RidgeDecoder(alphas=ALPHAS, solver="primal").fit(X, Yf, groups)
    b = RidgeDecoder(alphas=ALPHAS, solver="dual").fit(X, Yf, groups)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, atol=5e-5)
    same = a.best_alphas_ == b.best_alphas_
    assert same.mean() > 0.6  # the rest tie to float32 precision
    np.testing.assert_allclose(a.predict(X[:20])[:, same], b.predict(X[:20])[:, same], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("offset", [5.0, 0.01])  # chunked centring / one X @ X.T centred afterwards
def test_centred_kernel_equals_direct(offset):
    from himalaya.backend import set_backend

    X = np.random.default_rng(0).standard_normal((50, 1000)).astype(np.float32) + offset
    K = centered_linear_kernel(set_backend("numpy"), X, X.mean(0), chunk=128)
    Xc = X.astype(np.float64) - X.mean(0)
    np.testing.assert_allclose(K, Xc @ Xc.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(K, K.T, rtol=1e-6, atol=1e-4)


def test_subject_kernel_views_equal_direct_kernels():
    resp, _, _ = _study(n_clips=24, p=500)
    sk = SubjectKernel(resp)
    for window in (1.5, 5.0, 10.0, 15.0):
        view = sk.windowed(window)
        Xw = _flat(window_average(resp, window)).astype(np.float64)
        Xw -= Xw.mean(0)
        np.testing.assert_allclose(view.kernel(), Xw @ Xw.T, rtol=1e-4, atol=1e-2)
        assert view.n_samples == Xw.shape[0]
        keep = np.arange(24) % 3 != 0
        sub = view.subset(keep)
        Xs = _flat(window_average(resp[keep], window)).astype(np.float64)
        Xs -= Xs.mean(0)
        np.testing.assert_allclose(sub.kernel(), Xs @ Xs.T, rtol=1e-4, atol=1e-2)
    assert sk.windowed(1.5) is sk.view()  # 1.5-s windows are the TRs: no derived kernel


def test_fit_with_shared_kernel_equals_fit_without():
    resp, Y, runs = _study(n_clips=48, p=600)
    sk = SubjectKernel(resp, cache_factors=True)
    for window in (1.5, 10.0):
        X = _flat(window_average(resp, window))
        Yw = _flat(window_average(Y, window))
        r = X.shape[0] // 48
        groups = np.repeat(runs, r)
        plain = RidgeDecoder(alphas=ALPHAS).fit(X, Yw, groups)
        shared = RidgeDecoder(alphas=ALPHAS).fit(X, Yw, groups, kernel=sk.windowed(window))
        again = RidgeDecoder(alphas=ALPHAS).fit(X, Yw[:, ::-1], groups, kernel=sk.windowed(window))  # cached
        np.testing.assert_allclose(shared.cv_scores_, plain.cv_scores_, atol=2e-5)
        np.testing.assert_allclose(again.cv_scores_, plain.cv_scores_[::-1], atol=2e-5)
        np.testing.assert_allclose(shared.predict(X[:9]), plain.predict(X[:9]), rtol=1e-3, atol=1e-3)
        keep = runs != 3
        rows = np.repeat(keep, r)
        sub = RidgeDecoder(alphas=ALPHAS).fit(
            X[rows], Yw[rows], groups[rows], kernel=sk.windowed(window).subset(keep)
        )
        ref = RidgeDecoder(alphas=ALPHAS).fit(X[rows], Yw[rows], groups[rows])
        np.testing.assert_allclose(sub.cv_scores_, ref.cv_scores_, atol=2e-5)
    with pytest.raises(DataError, match="does not hold the samples"):
        RidgeDecoder().fit(X[::-1].copy(), Yw, groups, kernel=sk.windowed(10.0))
    with pytest.raises(DataError, match="kernel view holds"):
        RidgeDecoder().fit(X[rows], Yw[rows], groups[rows], kernel=sk.windowed(10.0))
    with pytest.raises(ConfigError, match="linear dual form only"):
        RidgeDecoder(kernel="rbf").fit(X, Yw, groups, kernel=sk.windowed(10.0))


def test_unusable_penalties_are_never_chosen():
    # Rank-deficient kernel at a scale where tiny penalties are below float32 resolution.
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((120, 5)) @ rng.standard_normal((5, 300)) * 1e3).astype(np.float32)
    Y = (X[:, :2] @ rng.standard_normal((2, 2)) * 1e-3 + rng.standard_normal((120, 2))).astype(np.float32)
    groups = np.arange(120) % 6
    splits = grouped_splits(groups, 5)
    from himalaya.backend import set_backend

    b = set_backend("numpy")
    K = centered_linear_kernel(b, X, X.mean(0))
    dual, best, _ = DualCV(b, K, splits, [1e-6, 1e4]).solve(Y)
    assert (best == 1e4).all()
    with pytest.raises(DataError, match="not positive definite in float32"):
        DualCV(b, K, splits, [1e-8]).solve(Y)


def test_folds_must_partition_the_samples():
    from himalaya.backend import set_backend

    b = set_backend("numpy")
    K = np.eye(10, dtype=np.float32)
    with pytest.raises(DataError, match="training set is every sample"):
        DualCV(b, K, [(np.arange(5), np.arange(5, 8))], [1.0])


@pytest.mark.neural
@pytest.mark.parametrize(("p", "kernel"), [(600, "linear"), (40, "linear"), (40, "rbf")])
def test_torch_backend_matches_numpy(p, kernel):
    pytest.importorskip("torch")
    resp, Y, runs = _study(n_clips=48, p=p)
    X, Yf, groups = _flat(resp), _flat(Y), np.repeat(runs, 10)
    kw = {"alphas": ALPHAS, "kernel": kernel, "max_exact_samples": None}
    ref = RidgeDecoder(**kw).fit(X, Yf, groups)
    dec = RidgeDecoder(**kw, backend="torch").fit(X, Yf, groups)
    assert dec.form_ == ref.form_
    for name in ("cv_scores_", "intercept_") + (("coef_",) if kernel == "linear" else ()):
        assert isinstance(getattr(dec, name), np.ndarray)
    np.testing.assert_allclose(dec.cv_scores_, ref.cv_scores_, atol=2e-5)
    same = dec.best_alphas_ == ref.best_alphas_
    assert same.mean() > 0.6  # the rest tie to float32 precision
    np.testing.assert_allclose(
        dec.predict(X[:10])[:, same], ref.predict(X[:10])[:, same], rtol=1e-3, atol=1e-3
    )
    if p == 600:
        sk = SubjectKernel(resp, backend="torch")
        shared = RidgeDecoder(alphas=ALPHAS, backend="torch").fit(X, Yf, groups, kernel=sk.view())
        np.testing.assert_allclose(shared.cv_scores_, ref.cv_scores_, atol=2e-5)


@pytest.mark.neural
def test_torch_encoding_model_matches_numpy():
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((60, 10, 4)).astype(np.float32)
    resp = (emb @ rng.standard_normal((4, 30)) + rng.standard_normal((60, 10, 30))).astype(np.float32)
    a = EncodingModel(1.5).fit(emb, resp, np.arange(60) % 6)
    b = EncodingModel(1.5, backend="torch", n_targets_batch=7).fit(emb, resp, np.arange(60) % 6)
    np.testing.assert_allclose(b.cv_r_, a.cv_r_, atol=2e-5)
    same = a.ridge_.best_alphas_ == b.ridge_.best_alphas_
    assert same.mean() > 0.6  # the rest tie to float32 precision
    np.testing.assert_allclose(
        b.predict(emb[:5])[..., same], a.predict(emb[:5])[..., same], rtol=1e-3, atol=1e-3
    )


def test_unknown_or_missing_backend_is_a_config_error():
    X, Y = np.ones((12, 3)), np.ones((12, 1))
    with pytest.raises(ConfigError, match="backend must be one of numpy, torch, torch_cuda, cupy"):
        RidgeDecoder(backend="jax").fit(X, Y)
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        import torch

        if not torch.cuda.is_available():
            with pytest.raises(ConfigError, match="needs a CUDA GPU"):
                RidgeDecoder(backend="torch_cuda").fit(X, Y)
    if importlib.util.find_spec("cupy") is None:
        with pytest.raises(ConfigError, match="needs CuPy"):
            SubjectKernel(np.ones((4, 2, 3)), backend="cupy")


def test_permutation_test_equals_the_direct_computation():
    rng = np.random.default_rng(1)
    pred = rng.standard_normal((30, 10, 70)).astype(np.float32)
    act = (0.3 * pred * (np.arange(70) < 10) + rng.standard_normal((30, 10, 70))).astype(np.float32)
    r, p = permutation_test(pred, act, n_permutations=200, random_state=4)
    zp, za = _zscore_samples(pred), _zscore_samples(act)
    r_ref = np.einsum("ctv,ctv->v", zp, za) / 300
    rng = np.random.default_rng(4)
    exceed = sum((np.einsum("ctv,ctv->v", zp[rng.permutation(30)], za) / 300) >= r_ref for _ in range(200))
    np.testing.assert_allclose(r, r_ref, atol=1e-6)
    np.testing.assert_array_equal(p, (1 + exceed) / 201)
    assert p[:10].max() < 0.01 < np.median(p[10:])


@pytest.mark.parametrize(("n_clips", "p", "form"), [(24, 500, "dual"), (48, 200, "primal")])
def test_threads_over_penalties_or_folds_equal_sequential(n_clips, p, form):
    """With two BLAS threads the dual's penalties / the primal's folds run concurrently, each on one thread."""
    resp, Y, runs = _study(n_clips=n_clips, p=p)
    X, Yf, groups = _flat(resp), _flat(Y), np.repeat(runs, 10)
    seq = RidgeDecoder(alphas=ALPHAS).fit(X, Yf, groups)
    with threadpool_limits(2):
        par = RidgeDecoder(alphas=ALPHAS).fit(X, Yf, groups)
    assert par.form_ == seq.form_ == form
    np.testing.assert_array_equal(par.best_alphas_, seq.best_alphas_)
    np.testing.assert_allclose(par.cv_scores_, seq.cv_scores_, atol=1e-6)
    np.testing.assert_allclose(par.coef_, seq.coef_, rtol=1e-5, atol=1e-6)


def test_ensemble_parcels_fitted_concurrently_match_the_serial_fit():
    from brain2music.models import EnsembleDecoder

    rng = np.random.default_rng(7)
    n, dim = 240, 4
    labels = rng.permutation(np.repeat(np.arange(1, 9), 12))
    Y = rng.standard_normal((n, dim)).astype(np.float32)
    X = rng.standard_normal((n, labels.size)).astype(np.float32)
    X[:, labels == 3] += Y @ rng.standard_normal((dim, 12)).astype(np.float32)
    groups = np.arange(n) % 8
    serial = EnsembleDecoder(labels, n_top=3, min_voxels=5).fit(X, Y, groups)
    with threadpool_limits(3):  # three parcels at a time, each single-threaded
        threaded = EnsembleDecoder(labels, n_top=3, min_voxels=5).fit(X, Y, groups)
    np.testing.assert_array_equal(threaded.parcel_scores_, serial.parcel_scores_)
    np.testing.assert_array_equal(threaded.selected_, serial.selected_)
    np.testing.assert_array_equal(threaded.predict(X), serial.predict(X))
