"""Encoding models (embedding → every voxel) with FIR delays, permutation tests, FDR and voxel selection.

How delays are applied. The data layer already shifts every clip's responses by ``base_delay`` volumes
(default 3 TRs = 4.5 s) and cuts one ``(n_trs, n_voxels)`` block per clip, so response TR ``t`` of a clip
is the BOLD volume ``onset + t + base_delay``. The embeddings come per window ``(n_clips, r, dim)``; they are
first spread onto the clip's TRs (each TR takes the mean of the windows that contain its midpoint; with
1.5-s windows that is one window per TR). An FIR delay of ``k`` volumes pairs response TR ``t`` with the
stimulus features of TR ``t + base_delay - k`` of the same clip, so delays (2, 3, 4) with the default shift
use stimulus TRs ``t + 1, t, t - 1``. Clips are arranged per clip (the training responses of repeated
clips are averaged), so a stimulus TR outside the clip takes the nearest TR of the same clip (edge
padding) rather than the unknown neighbouring clip: this affects at most ``max |base_delay - k|`` TRs at
each end of a clip.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from brain2music.errors import ConfigError, DataError
from brain2music.models._checks import check_not_constant
from brain2music.models.ridge import DEFAULT_ALPHAS, RidgeDecoder, correlation_per_target
from brain2music.windows import embedding_windows, window_tr_weights

__all__ = [
    "EncodingModel",
    "tr_features",
    "delay_features",
    "voxel_correlations",
    "permutation_test",
    "fdr_bh",
    "select_voxels",
]


def tr_features(embeddings: np.ndarray, window: float, n_trs: int, *, tr: float = 1.5) -> np.ndarray:
    """Spread window embeddings ``(n_clips, r, dim)`` onto TRs → ``(n_clips, n_trs, dim)``."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 3:
        raise DataError(f"embeddings must have shape (n_clips, r, dim); got {embeddings.shape}")
    inside = window_tr_weights(window, n_trs, tr=tr) > 0  # (r, n_trs)
    if inside.shape[0] != embeddings.shape[1]:
        raise DataError(
            f"embeddings have r={embeddings.shape[1]} windows per clip; a {window}-s window over "
            f"{n_trs} TRs of {tr} s gives r={inside.shape[0]}"
        )
    # A TR whose midpoint no window holds (the first TR under MERT's 5-s windows, which start at 1 s)
    # takes the nearest window; without this its features were 0/0 = NaN and the fit failed.
    empty = np.flatnonzero(~inside.any(axis=0))
    if empty.size:
        centres = embedding_windows(window, clip_duration=n_trs * tr, tr=tr).mean(axis=1)
        for t in empty:
            inside[int(np.argmin(np.abs(centres - (t + 0.5) * tr))), t] = True
    weights = inside.T / inside.T.sum(axis=1, keepdims=True)  # (n_trs, r)
    return np.einsum("tr,crd->ctd", weights.astype(np.float32), embeddings)


def delay_features(features: np.ndarray, delays=(2, 3, 4), *, base_delay: int = 3) -> np.ndarray:
    """FIR-delayed copies of per-TR features ``(n_clips, n_trs, dim)`` → ``(n_clips, n_trs, dim * n_delays)``.

    Delay ``k`` pairs response TR ``t`` with stimulus TR ``t + base_delay - k`` (edge-padded in the clip).
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 3:
        raise DataError(f"features must have shape (n_clips, n_trs, dim); got {features.shape}")
    delays = [int(k) for k in np.atleast_1d(delays)]
    if not delays:
        raise ConfigError("delays must hold at least one delay (in volumes)")
    n_trs = features.shape[1]
    t = np.arange(n_trs)
    out = [features[:, np.clip(t + int(base_delay) - k, 0, n_trs - 1)] for k in delays]
    return np.concatenate(out, axis=2)


def voxel_correlations(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Pearson r per voxel over all (clip, TR) samples; inputs ``(..., n_voxels)`` → ``(n_voxels,)``."""
    p = np.asarray(predicted).reshape(-1, np.shape(predicted)[-1])
    a = np.asarray(actual).reshape(-1, np.shape(actual)[-1])
    return correlation_per_target(a, p)


def _zscore_samples(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=(0, 1), keepdims=True)
    sd = x.std(axis=(0, 1), keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


def permutation_test(
    predicted: np.ndarray,
    actual: np.ndarray,
    *,
    n_permutations: int = 1000,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel Pearson r and one-sided permutation p-value (clip labels shuffled as blocks).

    Whole clips are permuted so the autocorrelation within a clip is kept under the null.

    Parameters
    ----------
    predicted, actual : ndarray, shape (n_clips, n_trs, n_voxels)

    Returns
    -------
    r : (n_voxels,) observed correlations; p : (n_voxels,) ``(1 + #{r_null >= r}) / (1 + n_permutations)``.
    """
    predicted = np.asarray(predicted, dtype=np.float32)
    actual = np.asarray(actual, dtype=np.float32)
    if predicted.shape != actual.shape or predicted.ndim != 3:
        raise DataError(
            f"predicted and actual must both be (n_clips, n_trs, n_voxels); got {predicted.shape} and {actual.shape}"
        )
    zp = _zscore_samples(predicted)
    za = _zscore_samples(actual)
    n_clips, n_trs, n_vox = zp.shape
    rng = np.random.default_rng(random_state)
    # Row 0 pairs every clip with itself (the observed r), the others are the permutations. A clip
    # permutation only reorders the clip-by-clip cross products S[c, d, v] = sum_t za[c,t,v] zp[d,t,v], so
    # each permuted r is a sum of n_clips rows of S (computed once) instead of a pass over all samples.
    pairing = np.vstack([np.arange(n_clips)] + [rng.permutation(n_clips) for _ in range(int(n_permutations))])
    rows = np.arange(n_clips)[None, :] * n_clips + pairing  # (1 + n_permutations, n_clips) rows of S
    r = np.empty(n_vox)
    exceed = np.zeros(n_vox, dtype=np.int64)
    step = max(1, 2**24 // (n_clips * n_clips))
    for start in range(0, n_vox, step):
        v = slice(start, start + step)
        a = np.ascontiguousarray(za[..., v].transpose(2, 0, 1))  # (v, clips, trs)
        p_ = np.ascontiguousarray(zp[..., v].transpose(2, 1, 0))  # (v, trs, clips)
        S = (a @ p_).transpose(1, 2, 0).reshape(n_clips * n_clips, -1)  # (clips * clips, v)
        values = np.zeros((rows.shape[0], S.shape[1]), dtype=np.float32)
        for c in range(n_clips):  # the same summation order for the observed and the permuted r
            values += S[rows[:, c]]
        values /= n_clips * n_trs
        r[v] = values[0]
        exceed[v] = (values[1:] >= values[0]).sum(axis=0)
    p = (1.0 + exceed) / (1.0 + int(n_permutations))
    return r, p


def fdr_bh(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), same shape as ``p_values``."""
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    n = flat.size
    if n == 0:
        return p.copy()
    order = np.argsort(flat)
    ranked = flat[order] * n / np.arange(1, n + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(n)
    q[order] = np.clip(q_sorted, 0, 1)
    return q.reshape(p.shape)


def select_voxels(
    scores: np.ndarray, *, n_top: int | None = None, threshold: float | None = 0.05, min_voxels: int = 50
) -> np.ndarray:
    """Indices of voxels chosen by an encoding model's CV score, best first.

    Keeps voxels with ``score > threshold`` (Ciferri et al.: r > 0.05), at most ``n_top`` of them; if fewer
    than ``min_voxels`` pass, the ``min_voxels`` best are kept so a decoder always has input.
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    if scores.ndim != 1 or scores.size == 0:
        raise DataError(f"scores must be a non-empty 1-D array (one per voxel); got shape {scores.shape}")
    order = np.argsort(-scores, kind="stable")
    keep = order if threshold is None else order[scores[order] > threshold]
    if n_top is not None:
        keep = keep[: int(n_top)]
    if keep.size < min_voxels:
        keep = order[: min(int(min_voxels), scores.size)]
    return np.sort(keep)


class EncodingModel(BaseEstimator):
    """Ridge from FIR-delayed, z-scored embedding features to every voxel (penalty per voxel, grouped CV).

    Parameters
    ----------
    window : float
        Embedding window (s) of the features (Table 1).
    delays : sequence of int
        FIR delays in volumes (default 2, 3, 4 TRs).
    base_delay : int
        Shift already applied to the responses by the data layer (``SubjectData.delay``).
    tr : float
    alphas, cv, n_targets_batch, backend : as :class:`RidgeDecoder`.

    Attributes
    ----------
    ridge_ : fitted RidgeDecoder (features → voxels)
    kept_ : ndarray (dim,) bool, the embedding dimensions used (those not constant over the training clips)
    cv_r_ : ndarray (n_voxels,) cross-validated Pearson r on the training clips (use it to select voxels)
    """

    def __init__(
        self,
        window: float = 1.5,
        *,
        delays=(2, 3, 4),
        base_delay: int = 3,
        tr: float = 1.5,
        alphas=DEFAULT_ALPHAS,
        cv: int = 5,
        n_targets_batch: int | None = 4096,
        backend: str = "numpy",
    ):
        self.window = window
        self.delays = delays
        self.base_delay = base_delay
        self.tr = tr
        self.alphas = alphas
        self.cv = cv
        self.n_targets_batch = n_targets_batch
        self.backend = backend

    def _features(self, embeddings: np.ndarray, n_trs: int) -> np.ndarray:
        feats = tr_features(embeddings[..., self.kept_], self.window, n_trs, tr=self.tr)
        feats = (feats - self.feature_mean_) / self.feature_std_
        return delay_features(feats, self.delays, base_delay=self.base_delay)

    def fit(self, embeddings, responses, groups=None) -> EncodingModel:
        """Fit on ``embeddings (n_clips, r, dim)`` → ``responses (n_clips, n_trs, n_voxels)``.

        ``groups`` (n_clips,) is the run of each clip (CV folds keep runs together).
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        responses = np.asarray(responses, dtype=np.float32)
        if responses.ndim != 3:
            raise DataError(f"responses must have shape (n_clips, n_trs, n_voxels); got {responses.shape}")
        if embeddings.ndim != 3 or embeddings.shape[0] != responses.shape[0]:
            raise DataError(
                f"embeddings {embeddings.shape} must be (n_clips, r, dim) with the same clips as responses "
                f"{responses.shape}"
            )
        n_clips, n_trs, n_vox = responses.shape
        # Dimensions constant over the training clips carry nothing to fit (e.g. dead ReLU units of a
        # pretrained network: musicnn-msd has two on the simulator's music); they are left out.
        flat = embeddings.reshape(-1, embeddings.shape[-1]).astype(np.float64)
        self.kept_ = flat.std(axis=0) > 1e-7 * (1.0 + np.abs(flat).max(axis=0))
        if not self.kept_.any():
            check_not_constant(flat, "embeddings", "dimension")
        per_tr = tr_features(embeddings[..., self.kept_], self.window, n_trs, tr=self.tr)
        self.feature_mean_ = per_tr.mean(axis=(0, 1))
        self.feature_std_ = per_tr.std(axis=(0, 1))
        X = self._features(embeddings, n_trs).reshape(n_clips * n_trs, -1)
        Y = responses.reshape(n_clips * n_trs, n_vox)
        g = None if groups is None else np.repeat(np.asarray(groups), n_trs)
        self.ridge_ = RidgeDecoder(
            alphas=self.alphas, cv=self.cv, solver="primal", n_targets_batch=self.n_targets_batch,
            backend=self.backend,
        ).fit(X, Y, g)  # fmt: skip
        self.cv_r_ = self.ridge_.cv_scores_
        self.n_voxels_ = n_vox
        return self

    def predict(self, embeddings, n_trs: int = 10) -> np.ndarray:
        """Predicted responses ``(n_clips, n_trs, n_voxels)``."""
        if not hasattr(self, "ridge_"):
            raise DataError("this EncodingModel is not fitted yet; call fit(embeddings, responses, groups)")
        X = self._features(np.asarray(embeddings, dtype=np.float32), n_trs)
        n_clips = X.shape[0]
        return self.ridge_.predict(X.reshape(n_clips * n_trs, -1)).reshape(n_clips, n_trs, -1)

    def score_voxels(self, embeddings, responses) -> np.ndarray:
        """Per-voxel Pearson r between predicted and actual ``responses (n_clips, n_trs, n_voxels)``."""
        responses = np.asarray(responses)
        return voxel_correlations(self.predict(embeddings, responses.shape[1]), responses)
