"""Comparing two runs of one study that differ only in arithmetic (backend, scheduler, BLAS, kernel reuse).

Continuous outputs (predictions, Pearson r, CV r) agree to a float32 tolerance. Discrete scores do not
have to: a pair of candidates whose correlations tie to float32 precision may be ordered either way, so
the identification accuracy over ``n`` clips may move by one pair in ``n (n - 1)`` (0.53249 against
0.53220 across two BLAS builds: one pair in 3,540). Those are compared with a margin of a few pairs.
"""

from __future__ import annotations

import numpy as np

#: Candidate pairs (or permutations, or clips for top-k) two runs may order differently.
PAIRS = 3
#: Tolerance of continuous figures (r, CV r) between two float32 runs.
R_ATOL = 1e-4


def id_acc_margin(n_clips: int, pairs: int = PAIRS) -> float:
    """A few pairs of the ``n_clips (n_clips - 1)`` compared by the paper's pairwise identification."""
    return pairs / (n_clips * (n_clips - 1))


def assert_rows_match(rows_a, rows_b, *, n_permutations: int = 1000) -> None:
    """Two runs' :class:`~brain2music.results.MethodResult` rows agree, discrete scores by a margin."""
    a = {(r.subject, r.encoder, r.method, r.split): r for r in rows_a}
    b = {(r.subject, r.encoder, r.method, r.split): r for r in rows_b}
    assert a.keys() == b.keys()
    for key, x in a.items():
        y = b[key]
        assert x.n_clips == y.n_clips, key
        assert abs(x.id_acc - y.id_acc) <= id_acc_margin(x.n_clips) + 1e-12, (key, x.id_acc, y.id_acc)
        np.testing.assert_allclose(x.pearson_r, y.pearson_r, atol=R_ATOL, err_msg=str(key))
        if x.train_cv_r is not None or y.train_cv_r is not None:
            np.testing.assert_allclose(x.train_cv_r, y.train_cv_r, atol=R_ATOL, err_msg=str(key))
        if x.id_acc_p is not None or y.id_acc_p is not None:
            # p = (1 + exceeding) / (1 + n_permutations): a few permutations may fall on the other side.
            assert abs(x.id_acc_p - y.id_acc_p) <= PAIRS / (n_permutations + 1) + 1e-12, key
        for name in ("top1_acc", "top5_acc"):
            u, v = getattr(x, name, None), getattr(y, name, None)
            if u is not None or v is not None:  # one clip's rank crossing k moves top-k by 1 / n
                assert abs(u - v) <= PAIRS / x.n_clips + 1e-12, (key, name, u, v)


def assert_held_out_genres_match(logo_a, logo_b, *, n_test: int, n_genres: int = 10) -> None:
    """Leave-one-genre-out scores agree: each genre's clips are compared with the other ``n_test - 1``."""
    a = {(g.subject, g.encoder, g.method, g.genre): g.id_acc for g in logo_a}
    b = {(g.subject, g.encoder, g.method, g.genre): g.id_acc for g in logo_b}
    assert a.keys() == b.keys()
    per_genre = n_test // n_genres
    margin = PAIRS / (per_genre * (n_test - 1))
    for key in a:
        assert abs(a[key] - b[key]) <= margin + 1e-12, (key, a[key], b[key])
