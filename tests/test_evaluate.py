"""Identification accuracy (paper Eq. 2-3), Pearson r, chance, per genre, noise ceilings, leave-one-genre-out."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from brain2music.errors import ConfigError, DataError
from brain2music.evaluate import (
    chance_identification,
    clip_vectors,
    explainable_variance,
    half_splits,
    identification_accuracy,
    identification_scores,
    leave_one_genre_out,
    mean_pearson_r,
    per_genre_accuracy,
    response_noise_ceiling,
    similarity_matrix,
    split_half_oracle,
)
from brain2music.models import RidgeDecoder


@pytest.fixture(autouse=True)
def _one_thread():
    # The test machine is shared; BLAS thread oversubscription makes small solves 20x slower.
    with threadpool_limits(1):
        yield


def _brute_force_id_acc(P, T):
    n = len(P)
    acc = []
    for i in range(n):
        cii = np.corrcoef(P[i], T[i])[0, 1]
        wins = [np.corrcoef(P[i], T[j])[0, 1] < cii for j in range(n) if j != i]
        acc.append(np.mean(wins))
    return float(np.mean(acc))


def test_similarity_is_pearson_between_rows():
    rng = np.random.default_rng(0)
    P, T = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    C = similarity_matrix(P, T)
    expected = np.corrcoef(P, T)[:7, 7:]
    np.testing.assert_allclose(C, expected, atol=1e-12)


def test_identification_matches_brute_force_equations():
    rng = np.random.default_rng(1)
    T = rng.standard_normal((20, 6))
    P = T + 1.5 * rng.standard_normal(T.shape)
    assert identification_accuracy(P, T) == pytest.approx(_brute_force_id_acc(P, T), abs=1e-12)


def test_identification_hand_computed_example():
    # C_ii beats 1 of 2 others for clip 0, both for clip 1, none for clip 2 → (0.5 + 1 + 0) / 3.
    C = np.array([[0.5, 0.9, 0.1], [0.0, 0.8, 0.7], [0.3, 0.4, 0.2]])
    np.testing.assert_allclose(identification_scores(C), [0.5, 1.0, 0.0])


def test_perfect_predictions_give_one_and_ties_count_as_failures():
    rng = np.random.default_rng(2)
    T = rng.standard_normal((30, 4, 16))
    assert identification_accuracy(T, T) == 1.0
    assert mean_pearson_r(T, T) == pytest.approx(1.0)
    # Identical rows tie with C_ii: a strict ">" scores them 0, as Eq. 3 says.
    same = np.ones((5, 16)) * np.arange(16)
    assert identification_accuracy(same, same) == 0.0


def test_shuffled_labels_are_at_chance():
    rng = np.random.default_rng(3)
    T = rng.standard_normal((60, 4, 32))
    accs = [identification_accuracy(T[rng.permutation(60)], T) for _ in range(40)]
    assert np.mean(accs) == pytest.approx(0.5, abs=0.05)
    acc, r = chance_identification(T, T, n_permutations=200, random_state=0)
    assert acc == pytest.approx(0.5, abs=0.05)
    assert r == pytest.approx(0.0, abs=0.05)


def test_window_modes():
    rng = np.random.default_rng(4)
    E = rng.standard_normal((3, 4, 5))
    np.testing.assert_allclose(clip_vectors(E), E.mean(axis=1))
    assert clip_vectors(E, "concat").shape == (3, 20)
    with pytest.raises(ConfigError, match="windows"):
        clip_vectors(E, "median")
    # Windows that cancel out on average: only "concat" keeps the clip identity.
    v = rng.standard_normal((40, 1, 8))
    T = np.concatenate([v, -v], axis=1)
    assert identification_accuracy(T, T, windows="concat") == 1.0
    assert identification_accuracy(T, T, windows="mean") == 0.0  # all-zero vectors tie everywhere


def test_shape_errors():
    with pytest.raises(DataError, match="shapes differ"):
        identification_accuracy(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(DataError, match="at least 2"):
        identification_accuracy(np.zeros((1, 3)), np.zeros((1, 3)))


def test_per_genre_accuracy_averages_per_clip_scores():
    C = np.array([[0.5, 0.9, 0.1], [0.0, 0.8, 0.7], [0.3, 0.4, 0.2]])
    assert per_genre_accuracy(C, ["a", "b", "a"]) == {"a": 0.25, "b": 1.0}
    with pytest.raises(DataError, match="one label per clip"):
        per_genre_accuracy(C, ["a"])


def test_half_splits():
    assert len(half_splits(4)) == 3
    assert all(len(a) == 2 and len(b) == 2 and set(a) | set(b) == {0, 1, 2, 3} for a, b in half_splits(4))
    assert half_splits(2) == [((0,), (1,))]
    with pytest.raises(DataError):
        half_splits(1)


def test_split_half_oracle_noise_free_and_pure_noise():
    rng = np.random.default_rng(5)
    signal = rng.standard_normal((30, 1, 2, 20))
    W = rng.standard_normal((20, 6))

    def predict(x):
        return x @ W

    acc, r = split_half_oracle(predict, np.repeat(signal, 4, axis=1))
    assert acc == 1.0 and r == pytest.approx(1.0)
    noise = rng.standard_normal((60, 4, 2, 20))
    acc, r = split_half_oracle(predict, noise)
    assert acc == pytest.approx(0.5, abs=0.06)
    assert np.isnan(split_half_oracle(predict, signal)[0])  # one repeat: no ceiling


def test_noise_ceiling_matches_analytic_value():
    rng = np.random.default_rng(6)
    n_clips, n_rep, n_trs, n_vox = 1000, 4, 10, 3
    signal = rng.standard_normal((n_clips, 1, n_trs, n_vox))
    noise_sd = np.array([0.0, 1.0, 2.0])
    data = signal + noise_sd * rng.standard_normal((n_clips, n_rep, n_trs, n_vox))
    # Ceiling of corr(signal, mean of 4 repeats) = sqrt(1 / (1 + sd^2 / 4)).
    expected = np.sqrt(1.0 / (1.0 + noise_sd**2 / n_rep))
    np.testing.assert_allclose(response_noise_ceiling(data), expected, atol=0.02)
    np.testing.assert_allclose(explainable_variance(data), 1.0 / (1.0 + noise_sd**2), atol=0.03)


def test_leave_one_genre_out_noise_free_is_perfect_and_noise_is_chance():
    rng = np.random.default_rng(7)
    genres = np.array(["a", "b", "c", "d", "e"])
    n_train, n_test, r, dim, n_vox = 100, 25, 2, 6, 40
    W = rng.standard_normal((dim, n_vox))
    y_train = rng.standard_normal((n_train, r, dim))
    y_test = rng.standard_normal((n_test, r, dim))
    g_train, g_test = np.resize(genres, n_train), np.resize(genres, n_test)
    runs = np.arange(n_train) % 10

    def fitter(x_train, x_test):
        def fit_without(drop):
            keep = ~drop
            dec = RidgeDecoder(alphas=[1e-3]).fit(
                x_train[keep].reshape(-1, n_vox), y_train[keep].reshape(-1, dim), np.repeat(runs[keep], r)
            )
            return dec.predict(x_test.reshape(-1, n_vox)).reshape(n_test, r, dim), lambda a: a

        return fit_without

    acc = leave_one_genre_out(fitter(y_train @ W, y_test @ W), g_train, g_test, y_test)
    assert set(acc) == set(genres)
    assert all(v == 1.0 for v in acc.values())
    noise_train = rng.standard_normal((n_train, r, n_vox))
    noise_test = rng.standard_normal((n_test, r, n_vox))
    acc = leave_one_genre_out(fitter(noise_train, noise_test), g_train, g_test, y_test)
    assert np.mean(list(acc.values())) == pytest.approx(0.5, abs=0.12)


# ---------------------------------------------------------------------------------------- uncertainty
def test_bootstrap_ci_matches_the_normal_interval():
    from brain2music.evaluate.stats import bootstrap_ci

    x = np.random.default_rng(0).normal(3.0, 2.0, size=400)
    lo, hi = bootstrap_ci(x, n_bootstrap=4000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert lo == pytest.approx(x.mean() - half, abs=0.04) and hi == pytest.approx(x.mean() + half, abs=0.04)
    assert bootstrap_ci([]) is None and bootstrap_ci([0.7]) == (0.7, 0.7)


def test_identification_p_value_is_exact_for_perfect_and_uniform_under_the_null():
    from brain2music.evaluate.stats import group_p_value, identification_p_value

    assert identification_p_value(np.eye(30), n_permutations=500) == pytest.approx(1 / 501)
    rng = np.random.default_rng(1)
    ps = [
        identification_p_value(rng.standard_normal((20, 20)), n_permutations=200, random_state=k)
        for k in range(200)
    ]
    assert np.mean(np.asarray(ps) < 0.05) == pytest.approx(0.05, abs=0.035)
    assert np.mean(ps) == pytest.approx(0.5, abs=0.06)
    assert group_p_value([np.eye(10), np.eye(10)], n_permutations=100) == pytest.approx(1 / 101)


def test_paired_sign_flip_test():
    from brain2music.evaluate.stats import paired_test

    a = np.array([0.9, 0.8, 0.7, 0.95, 0.85])
    same = paired_test(a, a)
    assert same.diff == 0.0 and same.p_value == 1.0
    # Five positive differences: the exact two-sided sign-flip p is 2 / 2**5.
    better = paired_test(a, a - 0.1, n_permutations=20000)
    assert better.diff == pytest.approx(0.1) and better.p_value == pytest.approx(2 / 32, abs=0.01)
    assert better.ci == pytest.approx((0.1, 0.1))
    # Subjects x clips: a clip's differences are flipped together, the statistic is the mean.
    both = paired_test(np.stack([a, a]), np.stack([a - 0.1, a - 0.3]), n_permutations=20000)
    assert both.diff == pytest.approx(0.2) and both.n == 5 and both.p_value == pytest.approx(2 / 32, abs=0.01)


def test_sd_convention_and_spearman_brown():
    from brain2music.evaluate.stats import spearman_brown, subject_sd

    assert subject_sd([0.8, 0.9, 1.0]) == pytest.approx(0.1)  # ddof=1
    assert subject_sd([0.8]) is None
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(1.0, 2) == pytest.approx(1.0) and spearman_brown(0.0, 2) == 0.0


def test_metric_spaces():
    from brain2music.evaluate.space import MetricSpace

    rng = np.random.default_rng(0)
    train = rng.normal([100.0, 0.01, -5.0], [10.0, 0.001, 1.0], size=(50, 4, 3))
    paper = MetricSpace.fit("paper", train)
    assert paper.transform(train) is not None and np.array_equal(paper.transform(train), train)
    std = MetricSpace.fit("standardized", train)
    z = std.transform(train).reshape(-1, 3)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-9)
    again = MetricSpace.from_arrays(**{k.replace("space_", "") if k != "space" else "name": v
                                       for k, v in std.arrays().items()})  # fmt: skip
    np.testing.assert_allclose(again.transform(train), std.transform(train))
    with pytest.raises(ConfigError, match="paper, standardized"):
        MetricSpace.fit("zscore", train)


def test_topk_scores_rank_the_true_target_and_count_ties_against_it():
    from brain2music.evaluate import topk_chance, topk_scores

    C = np.array([[0.9, 0.5, 0.1], [0.8, 0.7, 0.2], [0.3, 0.3, 0.3]])
    # clip 0 first; clip 1 second (0.8 > 0.7); clip 2 ties every rival, so it is last
    assert topk_scores(C, 1).tolist() == [1.0, 0.0, 0.0]
    assert topk_scores(C, 2).tolist() == [1.0, 1.0, 0.0]
    assert topk_scores(C, 3).tolist() == [1.0, 1.0, 1.0]
    assert topk_scores(np.zeros((5, 5)), 4).sum() == 0  # a constant prediction identifies nothing
    assert topk_chance(60, 5) == pytest.approx(5 / 60) and topk_chance(3, 5) == 1.0
    with pytest.raises(ValueError, match="positive integer"):
        topk_scores(C, 0)


def test_topk_accuracy_is_at_chance_on_random_similarities():
    from brain2music.evaluate import topk_scores

    rng = np.random.default_rng(0)
    acc = np.mean([topk_scores(rng.standard_normal((60, 60)), 5).mean() for _ in range(200)])
    assert acc == pytest.approx(5 / 60, abs=0.01)


def test_topk_p_value_is_exact_for_perfect_and_uniform_under_the_null():
    from brain2music.evaluate.stats import group_p_value, identification_p_value

    assert identification_p_value(np.eye(30), n_permutations=500, top_k=1) == pytest.approx(1 / 501)
    assert group_p_value([np.eye(10)] * 2, n_permutations=100, top_k=5) == pytest.approx(1 / 101)
    rng = np.random.default_rng(1)
    p = [identification_p_value(rng.standard_normal((20, 20)), n_permutations=100, top_k=5, random_state=k)
         for k in range(60)]  # fmt: skip
    assert 0.3 < np.mean(p) < 0.7


def test_hierarchical_bootstrap_resamples_subjects_only_from_three_on():
    from brain2music.evaluate.stats import bootstrap_ci, hierarchical_bootstrap_ci

    rng = np.random.default_rng(0)
    a, b = rng.random(60) * 0.2 + 0.7, rng.random(60) * 0.2 + 0.8
    # one subject: its clip bootstrap
    assert hierarchical_bootstrap_ci([a], random_state=3) == bootstrap_ci(a, random_state=3)
    # two subjects: an interval about the clips, around the mean, not the [min, max] of the two means
    lo, hi = hierarchical_bootstrap_ci([a, b], same_clips=True, n_bootstrap=4000)
    m = (a.mean() + b.mean()) / 2
    assert lo < m < hi and (lo, hi) != (min(a.mean(), b.mean()), max(a.mean(), b.mean()))
    assert hi - lo < abs(a.mean() - b.mean())
    # constant clips: the spread between 3+ subjects is what remains
    subj = [np.full(60, v) for v in (0.6, 0.7, 0.8, 0.9)]
    lo, hi = hierarchical_bootstrap_ci(subj, same_clips=True, n_bootstrap=4000)
    assert lo < 0.7 and hi > 0.8
    lo2, hi2 = hierarchical_bootstrap_ci(subj[:2], same_clips=True)
    assert lo2 == hi2 == pytest.approx(0.65)
    with pytest.raises(ValueError, match="same number of clips"):
        hierarchical_bootstrap_ci([a, b[:10]], same_clips=True)


def test_split_half_full_r_for_unequal_halves_matches_the_analytic_reliability():
    from brain2music.evaluate import split_half_full_r, split_half_scores
    from brain2music.evaluate.stats import spearman_brown

    # Signal variance 1, noise variance 2 per repeat: halves of 1 and 2 of 3 repeats correlate
    # 1 / sqrt((1 + 2)(1 + 1)); the mean of all 3 has reliability 1 / (1 + 2/3) = 0.6.
    assert split_half_full_r(1 / np.sqrt(6), 1, 2) == pytest.approx(0.6)
    assert spearman_brown(1 / np.sqrt(6), 3) == pytest.approx(
        0.674, abs=1e-3
    )  # the factor 3 / (3 // 2): wrong
    # Equal halves: the classic Spearman-Brown.
    assert split_half_full_r(0.5, 2, 2) == pytest.approx(spearman_brown(0.5, 2))
    assert np.isnan(split_half_full_r(-0.1, 1, 2)) and split_half_full_r(1.0, 1, 2) == 1.0
    with pytest.raises(DataError, match="at least one repeat"):
        split_half_full_r(0.5, 0, 2)
    rng = np.random.default_rng(7)
    signal = rng.standard_normal((4000, 1, 1, 3))
    repeats = signal + np.sqrt(2.0) * rng.standard_normal((4000, 3, 1, 3))
    scores = split_half_scores(lambda x: x, repeats, top_k=(1,))
    assert scores["pearson_r"] == pytest.approx(1 / np.sqrt(6), abs=0.02)
    assert scores["pearson_r_full"] == pytest.approx(0.6, abs=0.02)
    assert 0.0 <= scores["top1_acc"] <= 1.0


def test_split_half_scores_topk_of_noise_free_and_pure_noise():
    from brain2music.evaluate import split_half_scores

    rng = np.random.default_rng(8)
    signal = rng.standard_normal((60, 1, 2, 20))
    W = rng.standard_normal((20, 6))
    clean = split_half_scores(lambda x: x @ W, np.repeat(signal, 4, axis=1))
    assert clean["top1_acc"] == 1.0 and clean["top5_acc"] == 1.0
    noise = split_half_scores(lambda x: x @ W, rng.standard_normal((60, 4, 2, 20)))
    assert noise["top5_acc"] == pytest.approx(5 / 60, abs=0.06)
