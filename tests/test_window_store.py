"""Window store and alignment matching against a brute-force reference (random data, no audio)."""

from __future__ import annotations

import numpy as np
import pytest

from brain2music.reconstruct import window_store as ws


def _store(tmp_path, lengths, dim=12, seed=0, kind="exact"):
    rng = np.random.default_rng(seed)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    emb = rng.standard_normal((bounds[-1], dim)).astype(np.float32) + 3.0  # shared offset → z-score space
    starts = np.concatenate([np.arange(n) * 1.5 for n in lengths])
    info = ws.write_store(
        tmp_path / "windex-x", lambda: iter([emb[:7], emb[7:]]), starts, bounds, dim, kind=kind
    )
    return ws.WindowStore(tmp_path / "windex-x"), emb, info


def _brute(store, q):
    """Every alignment of every item, scored the slow, obvious way."""
    out = []
    for item in range(store.n_items):
        starts, t = store.item_windows(item)
        best = (-np.inf, 0.0)
        n_q, n_t = len(q), len(t)
        for shift in range(abs(n_t - n_q) + 1):
            if n_t >= n_q:
                s, off = np.mean(np.sum(t[shift : shift + n_q] * q, axis=1)), starts[shift]
            else:
                s, off = np.mean(np.sum(t * q[shift : shift + n_t], axis=1)), starts[0] - 1.5 * shift
            best = max(best, (s, off), key=lambda x: x[0])
        out.append((item, *best))
    return sorted(out, key=lambda x: -x[1])


def test_store_space_and_float16(tmp_path):
    store, emb, info = _store(tmp_path, [5, 3, 8])
    assert info["space"]["kind"] == "zscore" and store.vectors.dtype == np.float16
    assert np.allclose(np.linalg.norm(np.asarray(store.vectors, np.float32), axis=1), 1.0, atol=2e-3)
    np.testing.assert_allclose(store.vectors, store.to_space(emb), atol=2e-3)
    assert list(store.items) == [0] * 5 + [1] * 3 + [2] * 8 and list(store.bounds) == [0, 5, 8, 16]


@pytest.mark.parametrize("n_q", [1, 3, 6])
def test_match_equals_brute_force(tmp_path, n_q):
    lengths = [5, 3, 8, 1, 6, 4]  # some items shorter than the query
    store, emb, _ = _store(tmp_path, lengths, seed=n_q)
    rng = np.random.default_rng(10 + n_q)
    q = store.to_space(emb[7 : 7 + n_q] + 0.3 * rng.standard_normal((n_q, emb.shape[1])))
    q_starts = np.arange(n_q) * 1.5
    got = ws.match(store, q, q_starts, k=len(lengths))
    want = _brute(store, np.asarray(q))
    assert [m.item for m in got] == [w[0] for w in want]
    np.testing.assert_allclose([m.score for m in got], [w[1] for w in want], atol=1e-5)
    np.testing.assert_allclose([m.offset for m in got], [w[2] for w in want])
    # small blocks (several similarity matrices) give the same answer
    old, ws._BLOCK = ws._BLOCK, 4
    try:
        again = ws.match(store, q, q_starts, k=len(lengths))
    finally:
        ws._BLOCK = old
    assert [(m.item, m.offset) for m in again] == [(m.item, m.offset) for m in got]
    np.testing.assert_allclose([m.score for m in again], [m.score for m in got], atol=1e-6)


def test_index_candidates_rescored_exactly(tmp_path):
    lengths = [20] * 300
    store, emb, info = _store(tmp_path, lengths, dim=16, kind="ivfpq")
    assert info["index"]["kind"] == "ivfpq" and store.index is not None
    q = store.to_space(emb[20 * 123 + 4 : 20 * 123 + 8])
    ann = ws.match(store, q, np.arange(4) * 1.5, k=3)
    exact = ws.match(store, q, np.arange(4) * 1.5, k=3, exact=True)
    assert ann[0] == exact[0] and ann[0].item == 123 and ann[0].offset == 6.0
    scores, rows = store.nearest(q[:1], 5)
    assert store.items[rows[0, 0]] == 123
