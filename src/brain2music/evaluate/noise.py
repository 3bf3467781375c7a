"""Reproducibility and noise ceilings from the repeated test presentations (4 per test clip in ds003720).

One measure per direction:

- :func:`split_half_oracle` (decoding, the "Split-half" row of Table 2, named "Oracle" before the results
  model of issue 11; the function keeps its old name). It is a reproducibility measure, not a noise ceiling:
  it bounds nothing about the id acc against the true embeddings. The test repeats are split into two
  halves (repeats {a, b} vs {c, d}; all 3 distinct 2+2 splits, averaged); the *same* fitted decoder
  decodes each half's mean response, and the identification accuracy / Pearson r is computed between the
  two decoded halves (``C_ij = pearson(P^A_i, P^B_j)``). It measures how reproducible the decoded
  embedding is across independent presentations: a decoder whose output were pure noise scores 0.5,
  noise-free brains score 1.0. It is decoder- and embedding-specific and needs no ground truth; each half
  averages only half the repeats, so it understates the reproducibility of the full mean
  (``pearson_r_full`` applies the Spearman–Brown correction).
- :func:`response_noise_ceiling` (encoding). Per voxel, the signal power estimated from the repeats
  (Sahani & Linden 2003; the explainable variance of voxelwise_tutorials) gives the highest correlation
  a perfect model could reach with the repeat-averaged response: ``sqrt(SP / var(mean response))``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from brain2music.errors import DataError
from brain2music.evaluate.identification import identification_accuracy, mean_pearson_r

__all__ = ["half_splits", "split_half_oracle", "response_noise_ceiling", "explainable_variance"]


def half_splits(n_repeats: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """All distinct splits of ``range(n_repeats)`` into two halves (floor/ceil); e.g. 3 splits for 4."""
    if n_repeats < 2:
        raise DataError(f"a split-half ceiling needs at least 2 repeats per test clip; got {n_repeats}")
    reps = tuple(range(n_repeats))
    k = n_repeats // 2
    out, seen = [], set()
    for a in itertools.combinations(reps, k):
        b = tuple(r for r in reps if r not in a)
        key = frozenset([a, b])
        if key in seen:
            continue
        seen.add(key)
        out.append((a, b))
    return out


def split_half_oracle(
    predict: Callable[[np.ndarray], np.ndarray], test_repeats: np.ndarray, *, windows: str = "mean"
) -> tuple[float, float]:
    """Split-half reproducibility of decoded embeddings → ``(id_acc, pearson_r)`` (NaN with 1 repeat).

    Parameters
    ----------
    predict : callable mapping responses ``(n_clips, r, n_voxels)`` to embeddings ``(n_clips, r, dim)``.
    test_repeats : ndarray, shape (n_clips, n_repeats, r, n_voxels)
        Window-averaged responses of every test presentation.
    """
    test_repeats = np.asarray(test_repeats)
    if test_repeats.ndim != 4:
        raise DataError(
            f"test_repeats must have shape (n_clips, n_repeats, r, n_voxels); got {test_repeats.shape}"
        )
    if test_repeats.shape[1] < 2:
        return float("nan"), float("nan")
    accs, rs = [], []
    for a, b in half_splits(test_repeats.shape[1]):
        pa = predict(test_repeats[:, list(a)].mean(axis=1))
        pb = predict(test_repeats[:, list(b)].mean(axis=1))
        accs.append(identification_accuracy(pa, pb, windows=windows))
        rs.append(mean_pearson_r(pa, pb, windows=windows))
    return float(np.mean(accs)), float(np.mean(rs))


def _signal_power(test_repeats: np.ndarray):
    data = np.asarray(test_repeats, dtype=np.float64)
    if data.ndim < 3:
        raise DataError(
            f"test responses must have shape (n_clips, n_repeats, [n_trs,] n_voxels); got {data.shape}"
        )
    n_rep = data.shape[1]
    if n_rep < 2:
        raise DataError(f"a noise ceiling needs at least 2 repeats per test clip; got {n_rep}")
    # Samples are (clip, TR); repeats on axis 0.
    reps = np.moveaxis(data, 1, 0).reshape(n_rep, -1, data.shape[-1])
    mean_var = reps.var(axis=1).mean(axis=0)  # SP + NP
    var_mean = reps.mean(axis=0).var(axis=0)  # SP + NP / n
    signal = (n_rep * var_mean - mean_var) / (n_rep - 1)
    return signal, mean_var, var_mean


def explainable_variance(test_repeats: np.ndarray) -> np.ndarray:
    """Fraction of a single presentation's variance that is stimulus-driven, per voxel ``(n_voxels,)``."""
    signal, mean_var, _ = _signal_power(test_repeats)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean_var > 0, signal / mean_var, 0.0)


def response_noise_ceiling(test_repeats: np.ndarray) -> np.ndarray:
    """Highest attainable Pearson r with the repeat-averaged response, per voxel ``(n_voxels,)``.

    ``test_repeats`` has shape ``(n_clips, n_repeats, n_trs, n_voxels)`` (or without ``n_trs``).
    """
    signal, _, var_mean = _signal_power(test_repeats)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(var_mean > 0, np.clip(signal, 0, None) / var_mean, 0.0)
    return np.sqrt(np.clip(ratio, 0.0, 1.0))
