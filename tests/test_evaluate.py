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

    def make():
        return RidgeDecoder(alphas=[1e-3])

    acc = leave_one_genre_out(make, y_train @ W, y_train, g_train, runs, y_test @ W, y_test, g_test)
    assert set(acc) == set(genres)
    assert all(v == 1.0 for v in acc.values())
    noise_train = rng.standard_normal((n_train, r, n_vox))
    noise_test = rng.standard_normal((n_test, r, n_vox))
    acc = leave_one_genre_out(make, noise_train, y_train, g_train, runs, noise_test, y_test, g_test)
    assert np.mean(list(acc.values())) == pytest.approx(0.5, abs=0.12)
