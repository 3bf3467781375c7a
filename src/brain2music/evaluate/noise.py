"""Reproducibility and noise ceilings from the repeated test presentations (4 per test clip in ds003720).

One measure per direction:

- :func:`split_half_oracle` (decoding, the "Split-half" row of Table 2). It is a reproducibility measure,
  not a noise ceiling or an oracle: it bounds nothing about the id acc against the true embeddings. The test repeats are split into two
  halves (repeats {a, b} vs {c, d}; all 3 distinct 2+2 splits, averaged); the *same* fitted decoder
  decodes each half's mean response, and the identification accuracy / Pearson r is computed between the
  two decoded halves (``C_ij = pearson(P^A_i, P^B_j)``). It measures how reproducible the decoded
  embedding is across independent presentations: a decoder whose output were pure noise scores 0.5,
  noise-free brains score 1.0. It is decoder- and embedding-specific and needs no ground truth; each half
  averages only half the repeats, so it understates the reproducibility of the full mean
  (``pearson_r_full`` applies the Spearman–Brown correction, :func:`split_half_full_r`, which also holds
  for the unequal halves of an odd number of repeats). :func:`split_half_scores` adds the peers' top-k
  identification of one half's decodes among the other half's.
- :func:`response_noise_ceiling` (encoding). Per voxel, the signal power estimated from the repeats
  (Sahani & Linden 2003; the explainable variance of voxelwise_tutorials) gives the highest correlation
  a perfect model could reach with the repeat-averaged response: ``sqrt(SP / var(mean response))``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from brain2music.errors import DataError
from brain2music.evaluate.identification import (
    identification_scores,
    mean_pearson_r,
    similarity_matrix,
    topk_scores,
)

__all__ = [
    "half_splits",
    "split_half_full_r",
    "split_half_oracle",
    "split_half_scores",
    "response_noise_ceiling",
    "explainable_variance",
]


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
    scores = split_half_scores(predict, test_repeats, windows=windows, top_k=())
    return scores["id_acc"], scores["pearson_r"]


def split_half_scores(
    predict: Callable[[np.ndarray], np.ndarray],
    test_repeats: np.ndarray,
    *,
    windows: str = "mean",
    top_k: tuple[int, ...] = (1, 5),
) -> dict[str, float]:
    """Split-half reproducibility of decoded embeddings, averaged over :func:`half_splits`.

    Returns ``{"id_acc", "pearson_r", "pearson_r_full", "top<k>_acc" for k in top_k}``: half A's decodes
    identified among half B's (pairwise, Eq. 3, and N-way top-k), their Pearson r, and that r corrected
    to all repeats (:func:`split_half_full_r`). All NaN with one repeat. Shapes as
    :func:`split_half_oracle`.
    """
    test_repeats = np.asarray(test_repeats)
    if test_repeats.ndim != 4:
        raise DataError(
            f"test_repeats must have shape (n_clips, n_repeats, r, n_voxels); got {test_repeats.shape}"
        )
    n_rep = test_repeats.shape[1]
    keys = ["id_acc", "pearson_r", *(f"top{k}_acc" for k in top_k)]
    if n_rep < 2:
        return dict.fromkeys([*keys, "pearson_r_full"], float("nan"))
    values: dict[str, list[float]] = {k: [] for k in keys}
    for a, b in half_splits(n_rep):
        pa = predict(test_repeats[:, list(a)].mean(axis=1))
        pb = predict(test_repeats[:, list(b)].mean(axis=1))
        sim = similarity_matrix(pa, pb, windows=windows)
        r = mean_pearson_r(pa, pb, windows=windows)
        values["id_acc"].append(float(identification_scores(sim).mean()))
        values["pearson_r"].append(r)
        for k in top_k:
            values[f"top{k}_acc"].append(float(topk_scores(sim, k).mean()))
    out = {k: float(np.mean(v)) for k, v in values.items()}
    # Every split has halves of n_rep // 2 and n_rep - n_rep // 2 repeats: correct the mean r once.
    out["pearson_r_full"] = split_half_full_r(out["pearson_r"], n_rep // 2, n_rep - n_rep // 2)
    return out


def split_half_full_r(r: float, n_a: int, n_b: int) -> float:
    """Reliability of the mean of all ``n_a + n_b`` repeats from the correlation ``r`` between the means
    of ``n_a`` and of ``n_b`` of them (Spearman–Brown, unequal halves allowed).

    Each repeat is signal plus independent noise of equal variance. With ``x`` = noise / signal variance,
    ``r² = 1 / ((1 + x/n_a)(1 + x/n_b))``; solving for ``x`` gives the reliability of the full mean
    ``1 / (1 + x/(n_a + n_b))``. For ``n_a = n_b`` this is the classic ``m r / (1 + (m-1) r)`` with
    ``m = 2``. NaN for ``r <= 0`` (no signal to scale) and 1 for ``r >= 1``.
    """
    if n_a < 1 or n_b < 1:
        raise DataError(f"split-half halves need at least one repeat each; got {n_a} and {n_b}")
    if not np.isfinite(r) or r <= 0:
        return float("nan")
    if r >= 1:
        return 1.0
    s = n_a + n_b
    # x² + (n_a + n_b) x + n_a n_b (1 - 1/r²) = 0, positive root.
    x = (-s + np.sqrt(s * s - 4.0 * n_a * n_b * (1.0 - 1.0 / r**2))) / 2.0
    return float(1.0 / (1.0 + x / s))


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
