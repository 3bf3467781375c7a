"""Uncertainty of identification accuracies: confidence intervals, permutation and paired tests.

Conventions used everywhere in brain2music (results.json, table2.csv, reconstruction.json, the report):

- **sd over subjects** is the *sample* standard deviation (``ddof=1``, :func:`subject_sd`); with one
  subject there is no sd (``None``, printed ``n/a``).
- **95 % confidence intervals** are percentile bootstrap intervals of a mean: for one subject over its
  test clips (the per-clip scores ``id_acc_i`` of Eq. 3 with the similarity matrix held fixed,
  :func:`bootstrap_ci`); for the mean over subjects hierarchical (:func:`hierarchical_bootstrap_ci`):
  clips are resampled within the subjects, and the subjects themselves only where there are at least
  :data:`MIN_SUBJECTS_RESAMPLED` of them (a bootstrap over 2 subjects would only give their range).
  Every interval is reported with its n (subjects, clips).
- **p-values against chance** come from a permutation test: the clip labels of the predictions are
  shuffled (rows of ``C``), the identification accuracy recomputed, and
  ``p = (1 + #{acc_null >= acc}) / (1 + n_permutations)`` (one-sided; :func:`identification_p_value`).
  For the mean over subjects each subject is shuffled independently and the null is the mean
  (:func:`group_p_value`).
- **Paired tests** between two methods use the same test clips: the per-clip score differences are
  sign-flipped at random (two-sided; :func:`paired_test`); for the mean over subjects a clip's differences
  are flipped together in every subject, since all subjects heard the same clips.
- The split-half reproducibility is corrected to the full number of repeats with the Spearman–Brown
  formula (:func:`spearman_brown` for equal halves; unequal halves, an odd repeat count, with
  :func:`~brain2music.evaluate.noise.split_half_full_r`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brain2music.errors import DataError

__all__ = [
    "PairedTestResult",
    "MIN_SUBJECTS_RESAMPLED",
    "bootstrap_ci",
    "ci_list",
    "group_p_value",
    "hierarchical_bootstrap_ci",
    "identification_p_value",
    "paired_test",
    "spearman_brown",
    "subject_sd",
]

LEVEL = 0.95
#: Fewest subjects whose mean is bootstrapped over subjects too (below it only clips are resampled).
MIN_SUBJECTS_RESAMPLED = 3


def subject_sd(values: Sequence[float]) -> float | None:
    """Sample sd (``ddof=1``) of finite ``values``; ``None`` with fewer than 2."""
    v = _finite(values)
    return float(v.std(ddof=1)) if v.size >= 2 else None


def bootstrap_ci(
    values: Sequence[float], *, n_bootstrap: int = 1000, level: float = LEVEL, random_state=0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` ``(n,)``; ``None`` when empty."""
    v = _finite(values)
    if v.size == 0:
        return None
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(random_state)
    means = v[rng.integers(0, v.size, size=(int(n_bootstrap), v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def ci_list(ci: Sequence[float] | None) -> list[float] | None:
    """An interval ``(low, high)`` as the plain ``[low, high]`` floats a JSON record holds (``None`` stays)."""
    return None if ci is None else [float(ci[0]), float(ci[1])]


def hierarchical_bootstrap_ci(
    scores: Sequence[np.ndarray],
    *,
    same_clips: bool = False,
    n_bootstrap: int = 1000,
    level: float = LEVEL,
    random_state=0,
) -> tuple[float, float] | None:
    """Percentile interval of the mean over subjects of each subject's mean per-clip score.

    ``scores`` holds one ``(n_clips,)`` array per subject. Every resample draws clips with replacement
    within each subject (``same_clips``: the subjects heard the same clips in the same order, so one draw
    of clip indices serves all of them and a hard clip stays hard in every subject) and, where there
    are at least :data:`MIN_SUBJECTS_RESAMPLED` subjects, draws the subjects with replacement too. With
    fewer subjects the interval is about the clips these subjects heard, not about the population of
    subjects. One subject gives :func:`bootstrap_ci` of its clips. ``None`` when there is no score.
    """
    parts = [_finite(s) for s in scores]
    parts = [p for p in parts if p.size]
    if not parts:
        return None
    if len(parts) == 1:
        return bootstrap_ci(parts[0], n_bootstrap=n_bootstrap, level=level, random_state=random_state)
    rng = np.random.default_rng(random_state)
    b = int(n_bootstrap)
    if same_clips:
        sizes = {p.size for p in parts}
        if len(sizes) != 1:
            raise DataError(f"same_clips needs the same number of clips per subject; got {sorted(sizes)}")
        idx = rng.integers(0, parts[0].size, size=(b, parts[0].size))
        means = np.stack([p[idx].mean(axis=1) for p in parts], axis=1)  # (b, n_subjects)
    else:
        means = np.stack([p[rng.integers(0, p.size, size=(b, p.size))].mean(axis=1) for p in parts], axis=1)
    if len(parts) >= MIN_SUBJECTS_RESAMPLED:
        pick = rng.integers(0, len(parts), size=(b, len(parts)))
        means = np.take_along_axis(means, pick, axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means.mean(axis=1), [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _scores(C: np.ndarray, top_k: int | None = None) -> np.ndarray:
    """Per-clip scores of every matrix in a stack ``(..., n, n)`` → ``(..., n)``: the pairwise
    identification score (Eq. 3), or with ``top_k`` whether the true target is among the k best
    (ties count against it, as in :func:`~brain2music.evaluate.identification.topk_scores`)."""
    n = C.shape[-1]
    diag = np.diagonal(C, axis1=-2, axis2=-1)[..., None]
    if top_k is None:
        return (diag > C).sum(axis=-1) / (n - 1)
    return ((C >= diag).sum(axis=-1) - 1 < int(top_k)).astype(np.float64)


def _null_accuracies(
    similarity: np.ndarray, n_permutations: int, rng, top_k: int | None = None
) -> np.ndarray:
    C = np.asarray(similarity, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] < 2:
        raise DataError(f"similarity must be a square (n, n) matrix with n >= 2; got {C.shape}")
    n = C.shape[0]
    out = np.empty(int(n_permutations))
    for k in range(int(n_permutations)):
        # Shuffled labels: prediction perm[i] now claims to be clip i (rows of C permuted).
        out[k] = _scores(C[rng.permutation(n)], top_k).mean()
    return out


def identification_p_value(
    similarity: np.ndarray, *, n_permutations: int = 1000, random_state=0, top_k: int | None = None
) -> float:
    """One-sided permutation p-value against chance of the identification accuracy of ``similarity
    (n, n)`` (pairwise, Eq. 3), or of its top-k accuracy with ``top_k``."""
    observed = _scores(np.asarray(similarity, dtype=np.float64), top_k).mean()
    null = _null_accuracies(similarity, n_permutations, np.random.default_rng(random_state), top_k)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


def group_p_value(
    similarities: Sequence[np.ndarray],
    *,
    n_permutations: int = 1000,
    random_state=0,
    top_k: int | None = None,
) -> float | None:
    """Permutation p-value of the mean (pairwise or ``top_k``) identification accuracy over subjects
    (one matrix per subject, each shuffled independently)."""
    if not similarities:
        return None
    rng = np.random.default_rng(random_state)
    observed = np.mean([_scores(np.asarray(C, dtype=np.float64), top_k).mean() for C in similarities])
    null = np.mean([_null_accuracies(C, n_permutations, rng, top_k) for C in similarities], axis=0)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


@dataclass(frozen=True)
class PairedTestResult:
    """``diff`` = mean of ``a - b``; ``ci`` its 95 % bootstrap interval; ``p_value`` two-sided sign flip."""

    diff: float
    ci: tuple[float, float] | None
    p_value: float
    n: int


def paired_test(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    *,
    n_permutations: int = 1000,
    n_bootstrap: int = 1000,
    random_state=0,
) -> PairedTestResult:
    """Paired sign-flip test of per-clip scores ``(n_clips,)`` or ``(n_subjects, n_clips)``.

    With a 2-D input, the statistic is the mean over subjects of the mean difference; a clip's sign is
    flipped in every subject at once (the subjects heard the same clips), and the bootstrap resamples
    clips.
    """
    a = np.atleast_2d(np.asarray(scores_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(scores_b, dtype=np.float64))
    if a.shape != b.shape:
        raise DataError(f"paired scores must have the same shape; got {a.shape} and {b.shape}")
    d = (a - b).mean(axis=0)  # per clip, averaged over subjects (same statistic, fewer numbers)
    observed = float(d.mean())
    rng = np.random.default_rng(random_state)
    signs = rng.choice([-1.0, 1.0], size=(int(n_permutations), d.size))
    null = (signs * d).mean(axis=1)
    p = float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + null.size))
    ci = bootstrap_ci(d, n_bootstrap=n_bootstrap, random_state=random_state)
    return PairedTestResult(observed, ci, p, int(d.size))


def spearman_brown(r: float | np.ndarray, factor: float) -> float | np.ndarray:
    """Reliability of a measure ``factor`` times as long: ``factor r / (1 + (factor - 1) r)``."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = factor * r / (1.0 + (factor - 1.0) * r)
    return float(out) if out.ndim == 0 else out


def _finite(values) -> np.ndarray:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64).ravel()
    return v[np.isfinite(v)]
