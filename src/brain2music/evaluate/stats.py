"""Uncertainty of identification accuracies: confidence intervals, permutation and paired tests.

Conventions used everywhere in brain2music (results.json, table2.csv, reconstruction.json, the report):

- **sd over subjects** is the *sample* standard deviation (``ddof=1``, :func:`subject_sd`); with one
  subject there is no sd (``None``, printed ``n/a``).
- **95 % confidence intervals** are percentile bootstrap intervals of a mean: for one subject over its
  test clips (the per-clip scores ``id_acc_i`` of Eq. 3 with the similarity matrix held fixed), for the
  mean over subjects over the subjects (:func:`bootstrap_ci`).
- **p-values against chance** come from a permutation test: the clip labels of the predictions are
  shuffled (rows of ``C``), the identification accuracy recomputed, and
  ``p = (1 + #{acc_null >= acc}) / (1 + n_permutations)`` (one-sided; :func:`identification_p_value`).
  For the mean over subjects each subject is shuffled independently and the null is the mean
  (:func:`group_p_value`).
- **Paired tests** between two methods use the same test clips: the per-clip score differences are
  sign-flipped at random (two-sided; :func:`paired_test`); for the mean over subjects a clip's differences
  are flipped together in every subject, since all subjects heard the same clips.
- The split-half reproducibility is corrected to the full number of repeats with the Spearman–Brown
  formula (:func:`spearman_brown`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brain2music.errors import DataError

__all__ = [
    "PairedTestResult",
    "bootstrap_ci",
    "group_p_value",
    "identification_p_value",
    "paired_test",
    "spearman_brown",
    "subject_sd",
]

LEVEL = 0.95


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


def _scores(C: np.ndarray) -> np.ndarray:
    """Per-clip identification scores of every matrix in a stack ``(..., n, n)`` → ``(..., n)``."""
    n = C.shape[-1]
    diag = np.diagonal(C, axis1=-2, axis2=-1)[..., None]
    return (diag > C).sum(axis=-1) / (n - 1)


def _null_accuracies(similarity: np.ndarray, n_permutations: int, rng) -> np.ndarray:
    C = np.asarray(similarity, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] < 2:
        raise DataError(f"similarity must be a square (n, n) matrix with n >= 2; got {C.shape}")
    n = C.shape[0]
    out = np.empty(int(n_permutations))
    for k in range(int(n_permutations)):
        # Shuffled labels: prediction perm[i] now claims to be clip i (rows of C permuted).
        out[k] = _scores(C[rng.permutation(n)]).mean()
    return out


def identification_p_value(similarity: np.ndarray, *, n_permutations: int = 1000, random_state=0) -> float:
    """One-sided permutation p-value of the identification accuracy of ``similarity (n, n)`` against chance."""
    observed = _scores(np.asarray(similarity, dtype=np.float64)).mean()
    null = _null_accuracies(similarity, n_permutations, np.random.default_rng(random_state))
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


def group_p_value(
    similarities: Sequence[np.ndarray], *, n_permutations: int = 1000, random_state=0
) -> float | None:
    """Permutation p-value of the mean identification accuracy over subjects (one matrix per subject)."""
    if not similarities:
        return None
    rng = np.random.default_rng(random_state)
    observed = np.mean([_scores(np.asarray(C, dtype=np.float64)).mean() for C in similarities])
    null = np.mean([_null_accuracies(C, n_permutations, rng) for C in similarities], axis=0)
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
