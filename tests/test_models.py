"""Decoders, encoding models, alignment and decoder files, against reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.models import (
    EncodingModel,
    EnsembleDecoder,
    FunctionalAlignment,
    RidgeDecoder,
    SubsetDecoder,
    delay_features,
    fdr_bh,
    grouped_splits,
    load_decoder,
    load_decoder_record,
    permutation_test,
    save_decoder,
    select_voxels,
    tr_features,
)
from brain2music.models._checks import match_clip_ids


@pytest.fixture(autouse=True)
def _one_thread():
    # The test machine is shared; BLAS thread oversubscription makes small solves 20x slower.
    with threadpool_limits(1):
        yield


def _data(n, p, k=4, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)).astype(np.float32) + 2.0  # non-zero mean exercises the intercept
    W = rng.standard_normal((p, k)) / np.sqrt(p)
    Y = (X @ W + 1.0 + noise * rng.standard_normal((n, k))).astype(np.float32)
    return X, Y, np.arange(n) % 6


@pytest.mark.parametrize(("n", "p", "form"), [(60, 200, "dual"), (200, 30, "primal")])
def test_ridge_equals_sklearn_at_same_penalty(n, p, form):
    X, Y, groups = _data(n, p)
    dec = RidgeDecoder(alphas=[7.0]).fit(X, Y, groups)
    assert dec.form_ == form
    ref = Ridge(alpha=7.0, fit_intercept=True).fit(X.astype(np.float64), Y.astype(np.float64))
    X2 = _data(10, p, seed=1)[0]
    np.testing.assert_allclose(dec.predict(X2), ref.predict(X2), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dec.coef_, ref.coef_.T, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dec.intercept_, ref.intercept_, rtol=1e-3, atol=1e-3)


def test_forced_solvers_agree():
    X, Y, groups = _data(80, 50)
    a = RidgeDecoder(alphas=[3.0], solver="primal").fit(X, Y, groups).predict(X)
    b = RidgeDecoder(alphas=[3.0], solver="dual").fit(X, Y, groups).predict(X)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_rbf_equals_sklearn_kernel_ridge_with_intercept():
    # Kernel ridge with an unpenalised intercept: the kernel is centred in feature space (sklearn's
    # KernelCenterer) and the targets by their mean, as in every CV fold.
    from sklearn.metrics.pairwise import rbf_kernel
    from sklearn.preprocessing import KernelCenterer

    X, Y, groups = _data(80, 20)
    dec = RidgeDecoder(alphas=[0.5], kernel="rbf", gamma=0.05).fit(X, Y, groups)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    centerer = KernelCenterer().fit(rbf_kernel(X64, gamma=0.05))
    ref = KernelRidge(alpha=0.5, kernel="precomputed").fit(
        centerer.transform(rbf_kernel(X64, gamma=0.05)), Y64 - Y64.mean(axis=0)
    )
    expected = ref.predict(centerer.transform(rbf_kernel(X64[:7], X64, gamma=0.05))) + Y64.mean(axis=0)
    np.testing.assert_allclose(dec.predict(X[:7]), expected, rtol=1e-3, atol=1e-3)


def test_penalty_is_chosen_per_target():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((240, 40)).astype(np.float32)
    clean = X @ rng.standard_normal((40, 1))
    Y = np.hstack([clean, clean + 0 * X[:, :1], rng.standard_normal((240, 1)) * 10])
    Y[:, 1] = clean[:, 0] + 8.0 * rng.standard_normal(240)  # much noisier target
    dec = RidgeDecoder(alphas=np.logspace(-3, 4, 15)).fit(X, Y, np.arange(240) % 8)
    assert dec.best_alphas_[0] < dec.best_alphas_[1]  # noisy target needs more shrinkage
    assert dec.cv_scores_[0] > 0.99 and dec.cv_scores_[2] < 0.2


def test_grouped_splits_keep_runs_together():
    groups = np.repeat(np.arange(12), 40)
    splits = grouped_splits(groups, 5)
    assert len(splits) == 5
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
    assert np.sort(np.concatenate([t for _, t in splits])).tolist() == list(range(480))


def test_bad_input_errors():
    X, Y, groups = _data(60, 10)
    Xc = X.copy()
    Xc[:, 3] = 1.0
    with pytest.raises(DataError, match="constant feature"):
        RidgeDecoder().fit(Xc, Y, groups)
    Yc = Y.copy()
    Yc[:, 2] = 0.0
    with pytest.raises(DataError, match="constant target dimension"):
        RidgeDecoder().fit(X, Yc, groups)
    with pytest.raises(DataError, match="too few groups for 5-fold"):
        RidgeDecoder().fit(X, Y, np.arange(60) % 3)
    with pytest.raises(DataError, match="same number of samples"):
        RidgeDecoder().fit(X, Y[:-1], groups)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        RidgeDecoder().fit(Xn, Y, groups)
    with pytest.raises(ConfigError, match="alphas"):
        RidgeDecoder(alphas=[-1.0]).fit(X, Y, groups)
    with pytest.raises(ConfigError, match="kernel"):
        RidgeDecoder(kernel="poly").fit(X, Y, groups)
    with pytest.raises(DataError, match="not fitted"):
        RidgeDecoder().predict(X)
    dec = RidgeDecoder().fit(X, Y, groups)
    with pytest.raises(DataError, match="fitted on 10"):
        dec.predict(X[:, :5])


def test_clip_id_mismatch_lists_missing_ids():
    with pytest.raises(DataError, match=r"lack 2 of the 3 .*rock\.00001, jazz\.00002"):
        match_clip_ids(["blues.00000", "rock.00001", "jazz.00002"], ["blues.00000", "pop.00003"])
    np.testing.assert_array_equal(match_clip_ids(["b", "a"], ["a", "b", "c"]), [1, 0])


def test_ensemble_picks_the_informative_parcels():
    rng = np.random.default_rng(4)
    n, dim, n_parcels, per = 300, 5, 10, 15
    labels = rng.permutation(np.repeat(np.arange(1, n_parcels + 1), per))
    Y = rng.standard_normal((n, dim)).astype(np.float32)
    X = rng.standard_normal((n, labels.size)).astype(np.float32)
    informative = [2, 5, 9]
    strength = {2: 3.0, 5: 2.0, 9: 1.0}
    for p in informative:
        cols = labels == p
        X[:, cols] += strength[p] * (Y @ rng.standard_normal((dim, int(cols.sum()))))
    ens = EnsembleDecoder(labels, n_top=3, min_voxels=5).fit(X, Y, np.arange(n) % 10)
    assert ens.selected_.tolist() == [2, 5, 9]  # the informative parcels, strongest first
    assert (
        ens.selected_scores_[0] > ens.selected_scores_[2] > np.max(np.delete(ens.parcel_scores_, [1, 4, 8]))
    )
    assert ens.predict(X).shape == (n, dim)
    with pytest.raises(DataError, match="one parcel id per voxel"):
        EnsembleDecoder(labels[:-1]).fit(X, Y, np.arange(n) % 10)


def test_tr_features_and_delays():
    emb = np.arange(4, dtype=np.float32).reshape(1, 4, 1)  # 4 windows of 10 s over 10 TRs
    per_tr = tr_features(emb, 10.0, 10)
    assert per_tr.shape == (1, 10, 1)
    assert per_tr[0, 0, 0] == 0.0 and per_tr[0, -1, 0] == 3.0  # first TR only in window 0, last only in 3
    one = tr_features(np.arange(10, dtype=np.float32).reshape(1, 10, 1), 1.5, 10)
    np.testing.assert_array_equal(one[0, :, 0], np.arange(10))
    d = delay_features(one, delays=(2, 3, 4), base_delay=3)
    # delay 2 → stimulus TR t+1, delay 3 → t, delay 4 → t-1 (edge-padded inside the clip)
    np.testing.assert_array_equal(d[0, :, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 9])
    np.testing.assert_array_equal(d[0, :, 1], np.arange(10))
    np.testing.assert_array_equal(d[0, :, 2], [0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    with pytest.raises(DataError, match="r=3"):
        tr_features(np.zeros((1, 3, 2)), 10.0, 10)


def test_encoding_model_finds_responsive_voxels_and_tests_them():
    rng = np.random.default_rng(5)
    n_clips, n_trs, dim, n_vox = 120, 10, 4, 30
    emb = rng.standard_normal((n_clips, n_trs, dim)).astype(np.float32)
    feats = delay_features(tr_features(emb, 1.5, n_trs), (3,), base_delay=3)
    W = np.zeros((dim, n_vox), dtype=np.float32)
    W[:, :10] = rng.standard_normal((dim, 10))
    resp = feats @ W + 0.5 * rng.standard_normal((n_clips, n_trs, n_vox)).astype(np.float32)
    model = EncodingModel(1.5, delays=(2, 3, 4)).fit(emb[:100], resp[:100], np.arange(100) % 10)
    assert model.cv_r_[:10].min() > 0.8 and np.abs(model.cv_r_[10:]).max() < 0.2
    r, p = permutation_test(model.predict(emb[100:]), resp[100:], n_permutations=200, random_state=0)
    assert r[:10].min() > 0.8
    assert p[:10].max() == pytest.approx(1 / 201)
    q = fdr_bh(p)
    assert (q[:10] < 0.05).all() and (q[10:] > 0.05).mean() > 0.8
    np.testing.assert_array_equal(select_voxels(model.cv_r_, threshold=0.5, min_voxels=1), np.arange(10))
    with pytest.raises(DataError, match="constant dimension"):
        EncodingModel(1.5).fit(np.ones_like(emb[:100]), resp[:100], np.arange(100) % 10)


def test_fdr_bh_matches_scipy():
    from scipy.stats import false_discovery_control

    p = np.random.default_rng(6).uniform(size=50) ** 3
    np.testing.assert_allclose(fdr_bh(p), false_discovery_control(p), atol=1e-12)


def test_select_voxels_top_and_minimum():
    s = np.array([0.3, 0.01, 0.2, 0.5, np.nan])
    assert select_voxels(s, threshold=0.05, min_voxels=1).tolist() == [0, 2, 3]
    assert select_voxels(s, n_top=2, min_voxels=1).tolist() == [0, 3]
    assert select_voxels(s, threshold=0.9, min_voxels=2).tolist() == [0, 3]


def test_alignment_recovers_a_linear_map():
    rng = np.random.default_rng(7)
    ref = rng.standard_normal((300, 20)).astype(np.float32)
    M = rng.standard_normal((20, 25)).astype(np.float32)
    src = ref @ M  # the source subject sees the same signal through another voxel basis
    al = FunctionalAlignment(alphas=[1e-2, 1e-1], cv=5).fit(src, ref, np.arange(300) % 10)
    new_ref = rng.standard_normal((40, 20)).astype(np.float32)
    np.testing.assert_allclose(al.transform(new_ref @ M), new_ref, atol=0.05)


def test_subset_decoder_and_save_load_roundtrip(tmp_path):
    X, Y, groups = _data(100, 30)
    dec = SubsetDecoder(np.arange(0, 30, 2), RidgeDecoder(alphas=[1.0]), n_features=30).fit(X, Y, groups)
    ref = RidgeDecoder(alphas=[1.0]).fit(X[:, ::2], Y, groups)
    np.testing.assert_allclose(dec.predict(X), ref.predict(X[:, ::2]), atol=1e-5)
    path = save_decoder(dec, tmp_path / "d" / "dec.joblib", config={"method": "encsel"})
    np.testing.assert_array_equal(load_decoder(path).predict(X), dec.predict(X))
    rec = load_decoder_record(path)
    assert rec["config"] == {"method": "encsel"} and rec["version"]
    with pytest.raises(DataError, match="expects 30"):
        dec.predict(X[:, :20])
    with pytest.raises(DataFileNotFoundError):
        load_decoder(tmp_path / "missing.joblib")
    import joblib

    joblib.dump({"x": 1}, tmp_path / "other.joblib")
    with pytest.raises(DataError, match="not a brain2music decoder"):
        load_decoder(tmp_path / "other.joblib")


def test_rbf_nystroem_approximates_exact_kernel_ridge():
    X, Y, groups = _data(300, 10, noise=0.1)
    exact = RidgeDecoder(alphas=[1.0], kernel="rbf", max_exact_samples=None).fit(X, Y, groups)
    approx = RidgeDecoder(alphas=[1.0], kernel="rbf", max_exact_samples=100, n_components=300).fit(
        X, Y, groups
    )
    assert exact.form_ == "rbf" and approx.form_ == "rbf-nystroem"
    Xn = _data(50, 10, seed=2)[0]
    a, b = exact.predict(Xn), approx.predict(Xn)
    assert min(np.corrcoef(a[:, k], b[:, k])[0, 1] for k in range(a.shape[1])) > 0.99


@pytest.mark.parametrize(("n", "p", "form"), [(120, 300, "dual"), (300, 20, "primal")])
def test_cv_centres_with_training_fold_means(n, p, form):
    """The CV score of each penalty equals scikit-learn's Ridge(fit_intercept=True) refitted per fold.

    Every run has its own offset in X and in Y, so centring a fold with the whole training set's means
    (the old behaviour) gives a fold model without a proper intercept and different scores.
    """
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(6), n // 6)
    X = rng.standard_normal((n, p)) + 3.0 * rng.standard_normal((6, p))[groups]
    Y = X @ rng.standard_normal((p, 3)) / np.sqrt(p) + rng.standard_normal((n, 3))
    Y += 5.0 * rng.standard_normal((6, 3))[groups]
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    dec = RidgeDecoder(alphas=[10.0], cv=3).fit(X, Y, groups)
    assert dec.form_ == form
    ref = []
    for train, test in grouped_splits(groups, 3):
        pred = (
            Ridge(alpha=10.0).fit(X[train].astype(np.float64), Y[train]).predict(X[test].astype(np.float64))
        )
        ref.append([np.corrcoef(pred[:, j], Y[test, j])[0, 1] for j in range(3)])
    np.testing.assert_allclose(dec.cv_scores_, np.mean(ref, axis=0), atol=1e-4)
